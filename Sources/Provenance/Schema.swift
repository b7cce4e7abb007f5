// The provenance database's schema. Migrations are append-only: never edit a registered one, add
// the next ("v2", …) instead, so every existing database upgrades in place.
import GRDB

enum Schema {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
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
        return m
    }
}
