// `lgap-bench pipeline`: the whole LGAP pipeline — decode, caption, purify, classify — over the same
// test-dev images with lgap (the stages lgapd and `lgapctl purify` run, in micro-batches) and with the
// PyTorch reference pipeline (tools/bench/torch_pipeline.py: transformers + diffusers + the torch
// classifier) on the same pack, parameters, seeds, batch size and threads. Prints images/s for both, the
// ratio, per-stage seconds per image, FLOPs per image per stage (counted on the reference) and the share
// of the machine's FP32 peak each stage reaches in lgap; peak memory of each side; and how often the
// two pipelines agree. Any pack runs (--pack): the default pack, or a latent SD pack such as the
// paper's (docs/packs/sd15-blip).
//
// The reference runs as tuned as a user who cares would run it (../shared/MACHINE-NOTES.md): tcmalloc
// preloaded when installed (libtcmalloc-minimal4), OPENBLAS_NUM_THREADS=1 beside torch's own
// set_num_threads(threads), the same micro-batches, K purifications and both guidance branches in one
// UNet batch.
import Foundation
import ImageIO
import Models
import Digest
import JobModel
import JobProcessing
import Tensor

func runPipelineBench(
    images count: Int, batch: Int, threads: Int, python: String, seed: UInt64, peakGFLOPs: Double, pack packFolder: String?
) throws {
    let root = repoRoot()
    let packDir = packFolder ?? root + "/models/cifar10-mini"
    let work = NSTemporaryDirectory() + "lgap-pipeline-bench-\(getpid())"
    let fm = FileManager.default
    try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: work) }
    let files = try benchImageFiles(count: count, work: work)
    let blobs = try files.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }

    // lgap: the JobProcessor stages, one micro-batch at a time (a warm-up batch first, not timed).
    let pack = try Pack(folder: packDir)
    let processor = JobProcessor(pack: pack, options: ProcessorOptions(keepPurified: false))
    func items(_ range: Range<Int>) -> [JobItem] {
        range.map { i in
            JobItem(id: "b\(i)", input: blobs[i], format: nil, parameters: pack.parameters(seed: seed + UInt64(i)), inputSHA256: SHA256.hex(blobs[i]))
        }
    }
    _ = processor.run(items(0..<min(batch, count)))
    var seconds: [String: Double] = ["decode": 0, "caption": 0, "purify": 0, "classify": 0]
    var ours: [JobItem] = []
    let t0 = Date()
    for start in stride(from: 0, to: count, by: batch) {
        var b = items(start..<min(count, start + batch))
        for stage in StageName.allCases {
            let t = Date()
            b = processor.run(stage, b)
            seconds[stage.rawValue, default: 0] += Date().timeIntervalSince(t)
        }
        ours += b
    }
    let oursTotal = Date().timeIntervalSince(t0)
    let failed = ours.filter { !$0.ok }
    if let f = failed.first { throw BenchError.reference("lgap failed \(failed.count) jobs: \(f.failure.map { "\($0)" } ?? "")") }

    // The reference, same files in the same order.
    let list = work + "/files.txt"
    try files.joined(separator: "\n").write(toFile: list, atomically: true, encoding: .utf8)
    let oursPeakMiB = Double(peakRSSKilobytes()) / 1024  // before the reference runs: a child is not counted
    let theirs = try childJSON(
        python,
        [
            root + "/tools/bench/torch_pipeline.py", "--pack", packDir, "--list", list,
            "--batch", String(batch), "--threads", String(threads), "--seed", String(seed)
        ], environment: tunedTorchEnvironment())
    let tStages = theirs["stages"] as? [String: Double] ?? [:]
    let flops = theirs["flops"] as? [String: Double] ?? [:]
    let tTotal = theirs["seconds"] as? Double ?? .nan
    let tLabels = theirs["labels"] as? [String] ?? []
    let tCaptions = theirs["captions"] as? [String] ?? []
    let theirPeakMiB = (theirs["peak_rss_kb"] as? Double ?? .nan) / 1024
    let sameLabel = zip(ours, tLabels).filter { $0.0.prediction?.label == $0.1 }.count
    let sameCaption = zip(ours, tCaptions).filter { $0.0.caption?.text == $0.1 }.count

    let n = Double(count)
    print(
        "pipeline: \(count) test-dev images, batch \(batch), \(threads) threads, OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"), pack \(packDir)"
    )
    print(
        String(
            format: "| pipeline | images/s | |\n|---|---|---|\n| lgap | %.2f | |\n| PyTorch | %.2f | |\n| lgap / PyTorch | %.2f× | |",
            n / oursTotal, n / tTotal, tTotal / oursTotal))
    print("")
    print("| stage | lgap ms/img | PyTorch ms/img | lgap/PyTorch speed | GFLOP/img | lgap GFLOP/s | % of \(Int(peakGFLOPs)) GFLOP/s peak |")
    print("|---|---|---|---|---|---|---|")
    for name in ["decode", "caption", "purify", "classify"] {
        let o = (seconds[name] ?? 0) / n, t = (tStages[name] ?? .nan) / n
        let g = (flops[name] ?? 0) / 1e9
        let rate = g > 0 ? g / o : .nan
        print(
            String(
                format: "| %@ | %.2f | %.2f | %.2f× | %@ | %@ | %@ |", name, o * 1000, t * 1000, t / o,
                g > 0 ? String(format: "%.3f", g) : "–", g > 0 ? String(format: "%.0f", rate) : "–",
                g > 0 ? String(format: "%.0f%%", 100 * rate / peakGFLOPs) : "–"))
    }
    print("")
    print("agreement: same label \(sameLabel)/\(count), same caption \(sameCaption)/\(count)")
    print(String(format: "peak memory: lgap %.0f MiB, PyTorch %.0f MiB (resident set, whole process)", oursPeakMiB, theirPeakMiB))
}

/// The environment the PyTorch reference runs under: tcmalloc preloaded when installed, OpenBLAS
/// single-threaded (torch's own threads do the parallel work), everything else inherited.
func tunedTorchEnvironment() -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    let tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
    if FileManager.default.fileExists(atPath: tcmalloc) {
        env["LD_PRELOAD"] = [tcmalloc, env["LD_PRELOAD"]].compactMap { $0 }.joined(separator: ":")
    }
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env
}
