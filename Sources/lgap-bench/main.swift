// lgap-bench: benchmarks as programs (not tests). Each prints a table of lgap against the PyTorch
// reference measured on the same machine, thread count and OPENBLAS_CORETYPE in the same run.
//
//   lgap-bench ops [--threads N] [--repeat R] [--python PATH] [--filter SUBSTRING]
//   lgap-bench models --suite classifier|unet|captioner|all [--threads N] [--repeat R] [--cache DIR]
//   lgap-bench daemon [--images N] [--batch B] [--threads N]
//   lgap-bench pipeline [--images N] [--batch B] [--threads N] [--seed S] [--peak-gflops G]
import Foundation
import Tensor

let args = Array(CommandLine.arguments.dropFirst())
@MainActor func option(_ name: String, _ fallback: String) -> String {
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return fallback
}
let threads = Int(option("--threads", "2")) ?? 2
let repeatCount = Int(option("--repeat", "10")) ?? 10
let python = option("--python", ProcessInfo.processInfo.environment["LGAP_PYTHON"] ?? "/work/venv/bin/python")
Engine.threads = threads
do {
    switch args.first ?? "ops" {
    case "ops": try runOpsBench(threads: threads, repeats: repeatCount, python: python, filter: args.contains("--filter") ? option("--filter", "") : nil)
    case "models":
        try runModelsBench(suite: option("--suite", "classifier"), threads: threads, repeats: repeatCount, python: python,
                           cache: option("--cache", NSHomeDirectory() + "/.cache/lgap/bench-models"))
    case "daemon":
        try runDaemonBench(images: Int(option("--images", "5000")) ?? 5000, threads: threads, batch: Int(option("--batch", "32")) ?? 32)
    case "pipeline":
        try runPipelineBench(images: Int(option("--images", "256")) ?? 256, batch: Int(option("--batch", "32")) ?? 32, threads: threads,
                             python: python, seed: UInt64(option("--seed", "1")) ?? 1,
                             peakGFLOPs: Double(option("--peak-gflops", "530")) ?? 530)
    case "model-case":
        let check = option("--check", "")
        let (seconds, rss) = try runModelCase(args.count > 1 ? args[1] : "", cache: option("--cache", ""), repeats: repeatCount,
                                              check: check.isEmpty ? nil : check)
        print("{\"seconds\": \(seconds), \"peak_rss_kb\": \(rss)}")
    default: throw BenchError.usage("usage: lgap-bench ops|models [options] (see Sources/lgap-bench/main.swift)")
    }
} catch {
    FileHandle.standardError.write("lgap-bench: \(error)\n".data(using: .utf8)!)
    exit(1)
}
