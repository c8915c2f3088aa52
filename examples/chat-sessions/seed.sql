-- The example's data: insurance claims the chat sessions ask about. Idempotent; run it as
-- the database's owner before the first session (Vault's readonly users get SELECT on the
-- tables that exist when they are created):
--   psql "$OWNER_DATABASE_URL" -f examples/chat-sessions/seed.sql
CREATE TABLE IF NOT EXISTS claims (
    id       serial PRIMARY KEY,
    region   text NOT NULL,
    filed_on date NOT NULL,
    amount   numeric(10, 2) NOT NULL
);
INSERT INTO claims (region, filed_on, amount)
SELECT region, filed_on::date, amount
FROM (VALUES
    ('north', '2026-04-28', 1200.00),
    ('north', '2026-05-03', 310.50),
    ('south', '2026-05-11', 89.99),
    ('north', '2026-05-20', 4500.00),
    ('east',  '2026-05-30', 760.00),
    ('south', '2026-06-02', 150.00)
) AS rows (region, filed_on, amount)
WHERE NOT EXISTS (SELECT 1 FROM claims);
