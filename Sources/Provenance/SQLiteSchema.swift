// The SQLite provenance database's schema. Migrations are append-only: never edit a registered one,
// add the next ("v3", …) instead, so every existing database upgrades in place.
import GRDB

enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE runs (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        version TEXT NOT NULL,
                        started_at REAL NOT NULL,
                        stopped_at REAL,
                        pid INTEGER,
                        host TEXT,
                        config TEXT NOT NULL,
                        pack TEXT NOT NULL,
                        stages TEXT NOT NULL,
                        exit_reason TEXT
                    );
                    CREATE TABLE models (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        run_id INTEGER NOT NULL REFERENCES runs(id),
                        stage TEXT NOT NULL,
                        name TEXT NOT NULL,
                        path TEXT NOT NULL,
                        sha256 TEXT NOT NULL,
                        parameters INTEGER NOT NULL
                    );
                    CREATE TABLE jobs (
                        id TEXT PRIMARY KEY,
                        status TEXT NOT NULL,            -- accepted, processing, done, rejected, failed
                        reason TEXT,                     -- machine-readable reason for rejected/failed
                        error TEXT,                      -- human-readable detail
                        received_at REAL NOT NULL,
                        started_at REAL,
                        finished_at REAL,
                        run_id INTEGER,                  -- run that accepted the job
                        finished_run_id INTEGER,         -- run that finished it
                        attempts INTEGER NOT NULL DEFAULT 0,
                        mode TEXT,                       -- pull, router, replay
                        peer TEXT,
                        input_sha256 TEXT,
                        input_format TEXT,
                        input_size INTEGER,
                        width INTEGER,
                        height INTEGER,
                        input BLOB,
                        label TEXT,
                        meta TEXT,
                        requested_params TEXT,
                        strength REAL,
                        steps INTEGER,
                        guidance REAL,
                        eta REAL,
                        ensemble INTEGER,
                        seed INTEGER,
                        stages TEXT,                     -- stages that ran, comma-separated
                        caption TEXT,
                        caption_tokens TEXT,
                        caption_score REAL,
                        purified_sha256 TEXT,
                        purified BLOB,                   -- PNG of the (first) purified image
                        pred_label TEXT,
                        pred_index INTEGER,
                        confidence REAL,
                        top_k TEXT,
                        consistency TEXT,
                        timings TEXT                     -- JSON {stage: milliseconds}
                    );
                    CREATE INDEX jobs_status ON jobs(status, received_at);
                    CREATE INDEX jobs_received ON jobs(received_at);
                    CREATE TABLE stage_stats (
                        run_id INTEGER NOT NULL,
                        stage TEXT NOT NULL,
                        capacity INTEGER NOT NULL,
                        high_water INTEGER NOT NULL,
                        processed INTEGER NOT NULL,
                        updated_at REAL NOT NULL,
                        PRIMARY KEY (run_id, stage)
                    );
                    """)
        }
        // v2: the typed job model. Jobs get a queue order (seq), an owner (node), the stage they are
        // inside, suspicion and isolated-attempt counts, and their parameters as one JSON value;
        // refusals at the door move to their own table (two refusals claiming one id are two rows);
        // nodes keep the heartbeats fleet leases are read from.
        m.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE jobs_v2 (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        status TEXT NOT NULL,            -- JobStatus
                        reason TEXT,                     -- ReasonCode when rejected or failed
                        error TEXT,
                        node TEXT NOT NULL,              -- owner: the node that runs it
                        received_at REAL NOT NULL,
                        started_at REAL,
                        finished_at REAL,
                        run_id INTEGER,
                        finished_run_id INTEGER,
                        attempts INTEGER NOT NULL DEFAULT 0,   -- isolated runs the daemon did not survive
                        suspect INTEGER NOT NULL DEFAULT 0,    -- runs alone next
                        stage TEXT,                      -- the model stage it is inside while processing
                        mode TEXT NOT NULL,
                        peer TEXT,
                        input_sha256 TEXT NOT NULL,
                        input_format TEXT NOT NULL,
                        input_size INTEGER NOT NULL,
                        width INTEGER NOT NULL,
                        height INTEGER NOT NULL,
                        input BLOB,
                        label TEXT,
                        meta TEXT,
                        requested_params TEXT,           -- JSON
                        params TEXT NOT NULL,            -- JSON: strength, steps, guidance, eta, seed, ensemble
                        cost INTEGER NOT NULL DEFAULT 0,
                        stages_run TEXT,                 -- JSON array
                        caption TEXT,
                        caption_tokens TEXT,             -- JSON array
                        caption_score REAL,
                        purified_sha256 TEXT,
                        purified BLOB,
                        pred_label TEXT,
                        pred_index INTEGER,
                        confidence REAL,
                        top_k TEXT,                      -- JSON
                        consistency TEXT,
                        timings TEXT                     -- JSON {stage: milliseconds}
                    );
                    INSERT INTO jobs_v2 (id, status, reason, error, node, received_at, started_at, finished_at, run_id, finished_run_id,
                                         attempts, suspect, mode, peer, input_sha256, input_format, input_size, width, height, input, label,
                                         meta, requested_params, params, stages_run, caption, caption_tokens, caption_score, purified_sha256,
                                         purified, pred_label, pred_index, confidence, top_k, consistency, timings)
                    SELECT id, CASE status WHEN 'processing' THEN 'accepted' ELSE status END, reason, error, '', received_at, started_at,
                           finished_at, run_id, finished_run_id, 0, 0, COALESCE(mode, 'pull'), peer, input_sha256,
                           COALESCE(input_format, 'png'), COALESCE(input_size, 0), COALESCE(width, 0), COALESCE(height, 0), input, label, meta,
                           requested_params,
                           json_object('strength', strength, 'steps', steps, 'guidance', guidance, 'eta', COALESCE(eta, 0),
                                       'seed', seed, 'ensemble', COALESCE(ensemble, 1)),
                           CASE WHEN stages IS NULL OR stages = '' THEN NULL ELSE '["' || replace(stages, ',', '","') || '"]' END,
                           caption, caption_tokens, caption_score, purified_sha256, purified, pred_label, pred_index, confidence, top_k,
                           consistency, timings
                    FROM jobs WHERE input IS NOT NULL AND strength IS NOT NULL ORDER BY received_at, rowid;
                    CREATE TABLE refusals (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        claimed_id TEXT,
                        reason TEXT NOT NULL,
                        error TEXT NOT NULL,
                        node TEXT NOT NULL,
                        received_at REAL NOT NULL,
                        run_id INTEGER,
                        mode TEXT NOT NULL,
                        peer TEXT,
                        input_sha256 TEXT,
                        input_size INTEGER,
                        header TEXT
                    );
                    INSERT INTO refusals (claimed_id, reason, error, node, received_at, run_id, mode, peer, input_sha256, input_size, header)
                    SELECT CASE WHEN id LIKE 'rejected-%' THEN NULL ELSE id END, COALESCE(reason, 'bad_header'), COALESCE(error, ''), '',
                           received_at, run_id, COALESCE(mode, 'pull'), peer, input_sha256, input_size, meta
                    FROM jobs WHERE NOT (input IS NOT NULL AND strength IS NOT NULL) ORDER BY received_at, rowid;
                    DROP TABLE jobs;
                    ALTER TABLE jobs_v2 RENAME TO jobs;
                    CREATE INDEX jobs_queue ON jobs(node, status, suspect, seq);
                    CREATE INDEX jobs_received ON jobs(received_at);
                    CREATE INDEX jobs_finished ON jobs(status, finished_at);
                    CREATE INDEX refusals_claimed ON refusals(claimed_id);
                    CREATE INDEX refusals_received ON refusals(received_at);
                    CREATE TABLE nodes (
                        name TEXT PRIMARY KEY,
                        run_id INTEGER,
                        host TEXT,
                        pid INTEGER,
                        state TEXT,
                        started_at REAL,
                        heartbeat_at REAL,
                        running INTEGER NOT NULL DEFAULT 0,
                        finished INTEGER NOT NULL DEFAULT 0
                    );
                    ALTER TABLE runs ADD COLUMN node TEXT;
                    """)
        }
        return m
    }
}
