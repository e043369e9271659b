-- pgbench script of bench/single-span: one transaction inserts one span.
--
-- Every client counts its transactions in :n (pgbench keeps a client's
-- variables from one transaction to the next; the run script starts it at
-- 0 with -D n=0), so the id s_<run>_<client>_<n> is fresh every time, as
-- wrk's span.lua makes LogLineOS's. :run, :when and :pad come from -D.
-- The body is the same ~300-byte span LogLineOS is sent, built as text and
-- parsed into JSONB by the server, as LogLineOS parses the span it gets.
-- (No literal text here may hold a colon followed by a letter, a digit or
-- another colon: pgbench would read it as a variable; hence CAST, not ::.)
\set n :n + 1
INSERT INTO spans (tenant, id, body)
SELECT 't_bench', v.id,
  CAST(format('{"id":"%s","tenant":"t_bench","who":"bench","did":"bench.post","this":"order:%s","when":"%s","status":"confirmed","confirmed_by":["bench://%s"],"data":{"n":%s,"pad":"%s"}}',
    v.id, v.n % 100000, CAST(:when AS text), v.n % 7, v.n, CAST(:pad AS text)) AS jsonb)
FROM (SELECT CAST(:n AS bigint) AS n,
        's_' || CAST(:run AS text) || '_' || CAST(:client_id AS text) || '_' || CAST(:n AS text) AS id) v
ON CONFLICT DO NOTHING;
