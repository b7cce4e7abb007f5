// lgap-bench: benchmarks as programs (not tests). Each prints a table of lgap against the reference
// measured on the same machine, thread count and OPENBLAS_CORETYPE in the same run.
import ArgumentParser
import Foundation
import Locations
import Tensor

@main
struct LgapBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lgap-bench",
        abstract: "Benchmarks: ops, models and the pipeline against PyTorch; the daemon's own overhead.",
        subcommands: [Ops.self, ModelsSuite.self, Daemon.self, MetricsCost.self, Fleet.self, PipelineRun.self, ModelCase.self])
}

/// Options every benchmark shares.
struct BenchOptions: ParsableArguments {
    @Option(help: "Engine threads (and torch.set_num_threads on the reference side).") var threads = 2
    @Option(help: "Timed repetitions.") var `repeat` = 10
    @Option(help: "Python for the PyTorch reference (default: $LGAP_PYTHON, else python3).") var python: String?

    var interpreter: String { python ?? Locations.python }
    func apply() { Engine.threads = threads }
}

/// The repository (benchmarks read tools/ and models/ from it).
func repoRoot() -> String { Locations.repository ?? FileManager.default.currentDirectoryPath }

struct Ops: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Each op against torch on the same inputs.")
    @OptionGroup var bench: BenchOptions
    @Option(help: "Only ops whose name contains this.") var filter: String?
    func run() throws {
        bench.apply()
        try runOpsBench(threads: bench.threads, repeats: bench.repeat, python: bench.interpreter, filter: filter)
    }
}

struct ModelsSuite: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "Whole models against torch (full-size random weights).")
    @OptionGroup var bench: BenchOptions
    @Option(help: "classifier, unet, captioner or all.") var suite = "classifier"
    @Option(help: "Cache for the random full-size checkpoints.") var cache = Locations.cache + "/bench-models"
    func run() throws {
        bench.apply()
        try runModelsBench(suite: suite, threads: bench.threads, repeats: bench.repeat, python: bench.interpreter, cache: cache)
    }
}

struct MetricsCost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "What lgapd's metrics cost per job: its exact metric calls, timed, against a job's time.")
    @OptionGroup var bench: BenchOptions
    @Option(help: "Jobs.") var jobs = 1_000_000
    @Option(help: "Jobs between two renders of the registry (a scrape a second at this many jobs a second).") var jobsPerScrape = 400
    @Option(help: "A job's time in ms to compare with (default: the classifier-only pack's 1/428 s in lgap-bench daemon).")
    var jobMs = 1000.0 / 428
    func run() throws {
        runMetricsBench(jobs: jobs, threads: bench.threads, jobsPerScrape: jobsPerScrape, referenceJobMs: jobMs)
    }
}

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "lgapd's own overhead on a classifier-only pack, against lgapctl classify.")
    @OptionGroup var bench: BenchOptions
    @Option(help: "Images.") var images = 5000
    @Option(help: "Micro-batch size.") var batch = 32
    @Option(help: "Other lgapd and lgapctl binaries to measure in the same run (a folder holding both), e.g. a previous build.")
    var baseline: String?
    @Flag(help: "This build serves [metrics] and is scraped every second (the baseline as configured).") var metrics = false
    @Option(help: "Rounds, builds interleaved in each (with --baseline).") var rounds = 2
    @Flag(help: "The baseline predates [ingest] max_backlog: its configuration leaves it out.") var legacyBaseline = false
    func run() throws {
        bench.apply()
        try runDaemonBench(
            images: images, threads: bench.threads, batch: batch, baseline: baseline, metrics: metrics, rounds: rounds,
            legacyBaseline: legacyBaseline)
    }
}

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One node on SQLite against 1…N nodes on one PostgreSQL database: the store's cost and how jobs spread.")
    @OptionGroup var bench: BenchOptions
    @Option(help: "A PostgreSQL server URL allowed to create databases (one fresh database per run); default $LGAP_TEST_POSTGRES.")
    var server: String?
    @Option(help: "Images.") var images = 3000
    @Option(help: "Node counts on PostgreSQL, comma-separated.") var nodes = "1,2,3"
    @Flag(help: "The default pack (caption, purify, classify) instead of its classifier alone.") var fullPack = false
    @Option(help: "Writer counts for the store ceiling (no models), comma-separated; empty: skip it.") var storeWriters = "1,2,4,8"
    @Option(help: "Seconds per store-ceiling run.") var storeSeconds = 10.0
    func run() throws {
        guard let admin = server ?? ProcessInfo.processInfo.environment["LGAP_TEST_POSTGRES"] else {
            throw BenchError.reference("name a PostgreSQL server: --server postgres://… or $LGAP_TEST_POSTGRES (scripts/test-postgres.sh start)")
        }
        let counts = nodes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
        try runFleetBench(images: images, nodeCounts: counts, threads: bench.threads, admin: admin, fullPack: fullPack)
        let writers = storeWriters.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
        if !writers.isEmpty { try runStoreCeiling(admin: admin, writers: writers, seconds: storeSeconds, batch: 32) }
    }
}

struct PipelineRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pipeline", abstract: "The offline pipeline against tools/bench/torch_pipeline.py.")
    @OptionGroup var bench: BenchOptions
    @Option(help: "Images.") var images = 256
    @Option(help: "Micro-batch size.") var batch = 32
    @Option(help: "Seed of the first image.") var seed: UInt64 = 1
    @Option(name: .customLong("peak-gflops"), help: "This machine's FP32 peak, for the utilisation column.") var peakGFLOPs: Double = 530
    @Option(help: "Pack folder (default: models/cifar10-mini).") var pack: String?
    func run() throws {
        bench.apply()
        try runPipelineBench(
            images: images, batch: batch, threads: bench.threads, python: bench.interpreter, seed: seed, peakGFLOPs: peakGFLOPs, pack: pack)
    }
}

struct ModelCase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model-case", abstract: "One model case in this process (the models suite runs it).",
        shouldDisplay: false)
    @Argument var name: String
    @Option var cache = ""
    @Option var `repeat` = 10
    @Option var check: String?
    @Option var threads = 2
    func run() throws {
        Engine.threads = threads
        let (seconds, rss) = try runModelCase(name, cache: cache, repeats: self.repeat, check: check)
        print("{\"seconds\": \(seconds), \"peak_rss_kb\": \(rss)}")
    }
}
