-- An approval is used once: the call it cleared ran (approved), or its caller heard the refusal
-- (rejected, timed out). A caller outside the node asks again by repeating the call, which finds
-- its approval by requester, tool and argument digest.
ALTER TABLE approvals ADD COLUMN used_at TIMESTAMPTZ;
CREATE INDEX approvals_call ON approvals (requester, tool, args_digest) WHERE used_at IS NULL;
