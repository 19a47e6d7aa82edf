-- Running balances per account and budget period, written in the same transaction as the ledger
-- entries: admitting a metered request reads one row instead of summing an account's history.
-- Periods: 'total', 'day:YYYY-MM-DD' and 'month:YYYY-MM' (UTC).
CREATE TABLE account_balances (
    account TEXT NOT NULL,
    period  TEXT NOT NULL,
    amount  REAL NOT NULL,
    PRIMARY KEY (account, period)
);
INSERT INTO account_balances (account, period, amount)
    SELECT account, 'total', sum(amount) FROM ledger_entries GROUP BY account;
INSERT INTO account_balances (account, period, amount)
    SELECT account, strftime('day:%Y-%m-%d', at, 'unixepoch'), sum(amount) FROM ledger_entries
    GROUP BY account, strftime('day:%Y-%m-%d', at, 'unixepoch');
INSERT INTO account_balances (account, period, amount)
    SELECT account, strftime('month:%Y-%m', at, 'unixepoch'), sum(amount) FROM ledger_entries
    GROUP BY account, strftime('month:%Y-%m', at, 'unixepoch');

-- A key's budget resets per period ('total' never resets); 'capture' keeps its conversations.
ALTER TABLE api_keys ADD COLUMN budget_period TEXT NOT NULL DEFAULT 'total';
ALTER TABLE api_keys ADD COLUMN capture INTEGER NOT NULL DEFAULT 0;
-- A user who opted in to keeping their chat exchanges (with their own token) as conversations.
ALTER TABLE principals ADD COLUMN capture INTEGER NOT NULL DEFAULT 0;
