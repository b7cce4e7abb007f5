// The PostgreSQL provenance schema. Like SQLite's, migrations are append-only and identified; they run
// in one transaction under an advisory lock, so nodes starting together migrate once.
import Foundation

enum PostgresSchema {
    static let migrations: [(id: String, sql: String)] = [
        (
            "v1",
            """
            CREATE TABLE runs (
                id BIGSERIAL PRIMARY KEY,
                version TEXT NOT NULL,
                node TEXT,
                started_at DOUBLE PRECISION NOT NULL,
                stopped_at DOUBLE PRECISION,
                pid INTEGER,
                host TEXT,
                config TEXT NOT NULL,
                pack TEXT NOT NULL,
                stages TEXT NOT NULL,
                exit_reason TEXT
            );
            CREATE TABLE models (
                id BIGSERIAL PRIMARY KEY,
                run_id BIGINT NOT NULL REFERENCES runs(id),
                stage TEXT NOT NULL,
                name TEXT NOT NULL,
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                parameters BIGINT NOT NULL
            );
            CREATE TABLE jobs (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                status TEXT NOT NULL,
                reason TEXT,
                error TEXT,
                node TEXT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                run_id BIGINT,
                finished_run_id BIGINT,
                attempts INTEGER NOT NULL DEFAULT 0,
                suspect BOOLEAN NOT NULL DEFAULT false,
                stage TEXT,
                mode TEXT NOT NULL,
                peer TEXT,
                input_sha256 TEXT NOT NULL,
                input_format TEXT NOT NULL,
                input_size INTEGER NOT NULL,
                width INTEGER NOT NULL,
                height INTEGER NOT NULL,
                input BYTEA,
                label TEXT,
                meta TEXT,
                requested_params TEXT,
                params TEXT NOT NULL,
                cost BIGINT NOT NULL DEFAULT 0,
                stages_run TEXT,
                caption TEXT,
                caption_tokens TEXT,
                caption_score DOUBLE PRECISION,
                purified_sha256 TEXT,
                purified BYTEA,
                pred_label TEXT,
                pred_index INTEGER,
                confidence DOUBLE PRECISION,
                top_k TEXT,
                consistency TEXT,
                timings TEXT
            );
            CREATE INDEX jobs_queue ON jobs (node, status, suspect, seq);
            CREATE INDEX jobs_received ON jobs (received_at);
            CREATE INDEX jobs_finished ON jobs (status, finished_at);
            CREATE TABLE refusals (
                seq BIGSERIAL PRIMARY KEY,
                claimed_id TEXT,
                reason TEXT NOT NULL,
                error TEXT NOT NULL,
                node TEXT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                run_id BIGINT,
                mode TEXT NOT NULL,
                peer TEXT,
                input_sha256 TEXT,
                input_size INTEGER,
                header TEXT
            );
            CREATE INDEX refusals_claimed ON refusals (claimed_id);
            CREATE INDEX refusals_received ON refusals (received_at);
            CREATE TABLE nodes (
                name TEXT PRIMARY KEY,
                run_id BIGINT,
                host TEXT,
                pid INTEGER,
                state TEXT,
                started_at DOUBLE PRECISION,
                heartbeat_at DOUBLE PRECISION,
                running INTEGER NOT NULL DEFAULT 0,
                finished INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE stage_stats (
                run_id BIGINT NOT NULL,
                stage TEXT NOT NULL,
                capacity INTEGER NOT NULL,
                high_water INTEGER NOT NULL,
                processed BIGINT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (run_id, stage)
            );
            """
        )
    ]

    static func migrate(_ pool: PostgresPool) throws {
        try pool.transaction { c in
            try c.execute("SELECT pg_advisory_xact_lock(7305001)")
            try c.execute("CREATE TABLE IF NOT EXISTS lgap_migrations (id TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
            let done = Set(
                try c.execute("SELECT id FROM lgap_migrations").rows.compactMap { row -> String? in
                    if case .text(let s) = row[0] { return s } else { return nil }
                })
            for m in migrations where !done.contains(m.id) {
                try c.executeScript(m.sql)
                try c.execute("INSERT INTO lgap_migrations (id, applied_at) VALUES ($1, $2)", [.text(m.id), PGValue(Date().timeIntervalSince1970)])
            }
        }
    }
}
