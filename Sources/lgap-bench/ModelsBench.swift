// `lgap-bench models`: whole models — classifiers, the diffusion UNet and VAE, the BLIP captioner —
// against PyTorch (transformers / diffusers / torchvision) on the same weights, shapes, threads and
// machine. Each case runs in a fresh child process on both sides so peak memory is per case.
import Foundation
import ImageIO
import Models
import NN
import Tensor

let modelSuites: [String: [String]] = [
    "classifier": ["resnet56-b1", "resnet56-b64", "wrn28-10-b1", "wrn28-10-b16", "resnet50-b1", "resnet50-b16"],
    "unet": ["unet-pack-b2", "unet-sd15-b2", "vae-decode-384"],
    "captioner": ["blip-pack-beam3", "blip-base-beam3"]
]

/// Times one case in this process and returns (median seconds, peak RSS KiB); with `check`, also
/// writes the case's inputs and lgap's output there (safetensors) so the PyTorch side can run the same
/// inputs and report the difference.
func runModelCase(_ name: String, cache: String, repeats: Int, check: String? = nil) throws -> (Double, Int) {
    let pack = repoRoot() + "/models/cifar10-mini"
    var state: UInt64 = 1
    func random(_ shape: [Int]) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.withFreshData { p in
            for i in 0..<t.count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                p[i] = Float(state >> 40) / Float(1 << 24)
            }
        }
        return t
    }
    let run: () throws -> Tensor?
    var inputs: [String: Tensor] = [:]
    if let dash = name.range(of: "-b", options: .backwards), ["resnet56", "wrn28-10", "resnet50"].contains(String(name[..<dash.lowerBound])) {
        let model = String(name[..<dash.lowerBound]), batch = Int(name[dash.upperBound...])!
        let clf = try ImageClassifier(folder: model == "resnet56" ? pack + "/classifier" : cache + "/" + model)
        let x = random([batch, 3] + clf.config.inputSize)
        inputs = ["x": x]
        run = { clf.logits(preprocessed: x) }
    } else if name.hasPrefix("unet") {
        let unet = try UNet2DConditionModel(folder: name == "unet-sd15-b2" ? cache + "/unet-sd15" : pack + "/unet")
        let size = name == "unet-sd15-b2" ? 48 : (unet.config.sampleSize ?? 32)
        let x = random([2, unet.config.inChannels, size, size]), ctx = random([2, 77, unet.config.crossAttentionDim.value(0)])
        inputs = ["x": x, "context": ctx]
        run = { unet(x, timesteps: [500, 500], context: ctx) }
    } else if name == "vae-decode-384" {
        let vae = try AutoencoderKL(folder: cache + "/vae-sd15")
        let z = random([1, 4, 48, 48])
        inputs = ["x": z]
        run = { vae.decode(z) }
    } else if name.hasPrefix("blip") {
        let captioner = try Captioner(folder: name == "blip-base-beam3" ? cache + "/blip-base" : pack + "/captioner")
        let size = captioner.config.visionConfig.imageSize
        let x = random([1, 3, size, size])
        let options = GenerationOptions(numBeams: 3, maxLength: 20, minLength: 20)
        run = {
            _ = try captioner.caption(pixelValues: x, options: options); return nil
        }
    } else {
        throw BenchError.usage("unknown model case \(name)")
    }
    _ = try run()
    var times: [Double] = []
    for _ in 0..<repeats {
        let t = DispatchTime.now().uptimeNanoseconds
        try run()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
    }
    times.sort()
    // The checked output comes from a call after the timed ones, so it also covers reused buffers.
    if let check, let output = try run() {
        inputs["output"] = output
        try SafeTensorsWriter.write(inputs, to: check)
    }
    return (times[times.count / 2], peakRSSKilobytes())
}

/// This process's peak resident set so far (getrusage ru_maxrss, KiB on Linux).
func peakRSSKilobytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss)
}

/// Runs a child process and parses its last stdout line as JSON.
func childJSON(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> [String: Any] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let last = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
    guard p.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else {
        throw BenchError.reference("\(executable) \(arguments.joined(separator: " ")) failed (status \(p.terminationStatus))")
    }
    return obj
}

func runModelsBench(suite: String, threads: Int, repeats: Int, python: String, cache: String) throws {
    let cases = suite == "all" ? modelSuites.values.flatMap { $0 } : (modelSuites[suite] ?? [])
    guard !cases.isEmpty else { throw BenchError.usage("suites: \(modelSuites.keys.sorted().joined(separator: ", ")), all") }
    let script = repoRoot() + "/tools/bench/torch_models.py"
    _ = try? childJSON(python, [script, "prepare", "--cache", cache])  // prints paths, not JSON: ignore the parse
    print(
        "# lgap-bench models \(suite) — \(threads) thread(s), OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "<unset>"), lgap GEMM \(BLAS.backend.rawValue) (\(BLAS.engineKernel)), median of \(repeats)"
    )
    print("| case | lgap s | torch s | lgap/torch speed | lgap peak MiB | torch peak MiB | output max abs diff | max diff / max abs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    let checkDir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-bench-check-\(getpid())")
    try FileManager.default.createDirectory(at: checkDir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: checkDir) }
    for c in cases {
        // Both sides run the same inputs (lgap writes them with its output; torch reads them and
        // reports the largest difference from lgap's output), so each speed row is also a full-size
        // parity check of the model it times.
        let check = checkDir.appendingPathComponent(c + ".safetensors").path
        let ours: [String: Any], theirs: [String: Any]
        do {
            ours = try childJSON(
                CommandLine.arguments[0],
                [
                    "model-case", c, "--cache", cache, "--repeat", String(repeats), "--threads", String(threads),
                    "--check", check
                ])
            var targs = [script, "time", "--cache", cache, "--case", c, "--threads", String(threads), "--repeat", String(repeats)]
            if FileManager.default.fileExists(atPath: check) { targs += ["--check", check] }
            theirs = try childJSON(python, targs)
        } catch {
            print("| \(c) | – | – | skipped: \(error) | | | | |")
            continue
        }
        let o = ours["seconds"] as! Double, t = theirs["seconds"] as! Double
        let om = (ours["peak_rss_kb"] as! Int) / 1024, tm = (theirs["peak_rss_kb"] as! Int) / 1024
        let diff = (theirs["max_abs_diff"] as? Double).map { String(format: "%.2e", $0) } ?? "–"
        let rel = (theirs["max_rel_diff"] as? Double).map { String(format: "%.2e", $0) } ?? "–"
        print(String(format: "| %@ | %.4f | %.4f | %.2f× | %d | %d | %@ | %@ |", c, o, t, t / o, om, tm, diff, rel))
    }
}
