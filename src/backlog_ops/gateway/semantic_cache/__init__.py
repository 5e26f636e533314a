"""The semantic cache: a paraphrased repeat of a request is answered from a stored response.

Offline by default: embeddings from a small static model that ships inside a Python package
(`embedder`), an embedded vector index in SQLite with sqlite-vec (`index_sqlite`), and
PostgreSQL or Redis options for a team gateway (`index_postgres`, `index_redis`: exact scans of
one scope, since neither pgvector nor Redis vector search is assumed). `policy` decides what may be cached and
under which scope (project + virtual key + team: an entry is never served across them);
`backend` is the LiteLLM cache backend that puts it together, installed in a running proxy by
the `semantic_cache` callback. Settings per project come from backlog.config.json's
`llmOps.cachePolicy.semanticCache`, through the policy section of the proxy config (`settings`).
"""
