-- Running balances per account and budget period, written in the same transaction as the ledger
-- entries: admitting a metered request reads one row instead of summing an account's history.
-- Periods: 'total', 'day:YYYY-MM-DD' and 'month:YYYY-MM' (UTC).
CREATE TABLE account_balances (
    account text NOT NULL,
    period  text NOT NULL,
    amount  double precision NOT NULL,
    PRIMARY KEY (account, period)
);
INSERT INTO account_balances (account, period, amount)
    SELECT account, 'total', sum(amount) FROM ledger_entries GROUP BY account;
INSERT INTO account_balances (account, period, amount)
    SELECT account, 'day:' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), sum(amount)
    FROM ledger_entries GROUP BY 1, 2;
INSERT INTO account_balances (account, period, amount)
    SELECT account, 'month:' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM'), sum(amount)
    FROM ledger_entries GROUP BY 1, 2;

-- A key's budget resets per period ('total' never resets); 'capture' keeps its conversations.
ALTER TABLE api_keys ADD COLUMN budget_period text NOT NULL DEFAULT 'total';
ALTER TABLE api_keys ADD COLUMN capture boolean NOT NULL DEFAULT false;
-- A user who opted in to keeping their chat exchanges (with their own token) as conversations.
ALTER TABLE principals ADD COLUMN capture boolean NOT NULL DEFAULT false;
