"""Where Optuna studies live: one URL names the storage (``urls``), and every process opens it the same way
(``rdb``): the embedded SQLite file made safe for concurrent workers, PostgreSQL for workers on several
machines, both waiting out a lost database (``reconnect``), with heartbeats for ask-and-tell workers
(``heartbeat``); PgBouncer in front of PostgreSQL for hundreds of workers (``pooler``)."""
