-- The PostgreSQL side of bench/single-span: one row per span, its primary
-- key the span's (tenant, id), its body the span itself as JSONB.
CREATE TABLE spans (
  tenant text NOT NULL,
  id     text NOT NULL,
  body   jsonb NOT NULL,
  PRIMARY KEY (tenant, id)
);
