-- 0005: request/response bodies are stored packed: the six documents of a call as one
-- JSON array, compressed with zstd by the proxy's analysis worker (storage/rows.py,
-- pack_bodies). About a fifth of the bytes, no server-side JSON parsing, and the row
-- stays small enough to live inline. Rows written before keep their columns; get()
-- reads either form.
ALTER TABLE trace_bodies ADD COLUMN packed bytea;
