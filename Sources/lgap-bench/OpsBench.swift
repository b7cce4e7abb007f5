// `lgap-bench ops`: the tensor engine's ops at realistic shapes against PyTorch on the same machine,
// threads and run (tools/bench/torch_ops.py times the torch side). Prints seconds, GFLOP/s for both
// and the ratio (> 1: lgap faster).
import Foundation
import NN
import Tensor

struct OpCase {
    let name: String
    let op: String
    let shapes: [String: [Int]]
    let params: [String: Int]
    let flops: Double  // 0 when GFLOP/s makes no sense (memory-bound ops)
    let run: () -> Void

    var json: [String: Any] {
        var d: [String: Any] = ["name": name, "op": op]
        for (k, v) in shapes { d[k] = v }
        for (k, v) in params { d[k] = v }
        return d
    }
}

func randomTensor(_ shape: [Int], scale: Float = 1) -> Tensor {
    var state: UInt64 = 0x9E3779B97F4A7C15 &* UInt64(shape.reduce(1, *) + 7)
    let n = Tensor.elementCount(shape)
    let t = Tensor(uninitialized: shape)
    t.withFreshData { p in
        for i in 0..<n {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            p[i] = (Float(state >> 40) / Float(1 << 24) - 0.5) * 2 * scale
        }
    }
    return t
}

func opCases() -> [OpCase] {
    var cases: [OpCase] = []
    func conv(_ name: String, _ x: [Int], _ cout: Int, k: Int, stride: Int = 1, pad: Int) {
        let xt = randomTensor(x), w = randomTensor([cout, x[1], k, k], scale: 0.05), b = randomTensor([cout])
        let ho = (x[2] + 2 * pad - k) / stride + 1, wo = (x[3] + 2 * pad - k) / stride + 1
        let flops = 2.0 * Double(x[0] * cout * ho * wo * x[1] * k * k)
        cases.append(
            OpCase(
                name: name, op: "conv2d", shapes: ["x": x, "w": [cout, x[1], k, k]], params: ["stride": stride, "padding": pad],
                flops: flops
            ) { _ = conv2d(xt, weight: w, bias: b, stride: (stride, stride), padding: (pad, pad)) })
        // The same convolution as the models run it: an NN.Conv2d layer, whose weights are laid out once
        // at load time for the path ConvAlgorithm picks (direct kernel, Winograd or packed GEMM).
        let layer = Conv2d(weight: w, bias: b, stride: stride, padding: pad)
        cases.append(
            OpCase(
                name: name + " (layer)", op: "conv2d", shapes: ["x": x, "w": [cout, x[1], k, k]], params: ["stride": stride, "padding": pad],
                flops: flops
            ) { _ = layer(xt) })
    }
    conv("conv3x3 SD 320ch 48×48 b2", [2, 320, 48, 48], 320, k: 3, pad: 1)
    conv("conv3x3 SD 640ch 24×24 b2", [2, 640, 24, 24], 640, k: 3, pad: 1)
    conv("conv1x1 SD 320ch 48×48 b2", [2, 320, 48, 48], 320, k: 1, pad: 0)
    conv("conv3x3 CIFAR 16ch 32×32 b1", [1, 16, 32, 32], 16, k: 3, pad: 1)
    conv("conv3x3 CIFAR 16ch 32×32 b64", [64, 16, 32, 32], 16, k: 3, pad: 1)
    conv("conv3x3 CIFAR 32ch 16×16 b64", [64, 32, 16, 16], 32, k: 3, pad: 1)
    conv("conv3x3 CIFAR 64ch 8×8 b64", [64, 64, 8, 8], 64, k: 3, pad: 1)
    // The 3×3 layers that dominate the other models (issues 3 and 4): VAE decoder at 384 px,
    // WideResNet-28-10 and ResNet-50 at batch 16, the default pack's UNet at batch 8.
    conv("conv3x3 VAE 512ch 96×96 b1", [1, 512, 96, 96], 512, k: 3, pad: 1)
    conv("conv3x3 VAE 128ch 384×384 b1", [1, 128, 384, 384], 128, k: 3, pad: 1)
    conv("conv3x3 WRN 160ch 32×32 b16", [16, 160, 32, 32], 160, k: 3, pad: 1)
    conv("conv3x3 WRN 640ch 8×8 b16", [16, 640, 8, 8], 640, k: 3, pad: 1)
    conv("conv3x3 R50 64ch 56×56 b16", [16, 64, 56, 56], 64, k: 3, pad: 1)
    conv("conv3x3 R50 512ch 7×7 b16", [16, 512, 7, 7], 512, k: 3, pad: 1)
    conv("conv3x3 pack 128ch 16×16 b8", [8, 128, 16, 16], 128, k: 3, pad: 1)
    func lin(_ name: String, _ m: Int, _ k: Int, _ n: Int) {
        let x = randomTensor([m, k]), w = randomTensor([n, k]), b = randomTensor([n])
        cases.append(
            OpCase(name: name, op: "linear", shapes: ["x": [m, k], "w": [n, k]], params: [:], flops: 2.0 * Double(m * k * n)) {
                _ = linear(x, weight: w, bias: b)
            })
    }
    lin("linear SD GEGLU 4608×320→2560", 4608, 320, 2560)
    lin("linear SD FF out 4608×1280→320", 4608, 1280, 320)
    lin("linear SD to_q 4608×320→320", 4608, 320, 320)
    let a = randomTensor([2048, 2048]), b = randomTensor([2048, 2048])
    cases.append(
        OpCase(
            name: "matmul 2048³", op: "matmul", shapes: ["a": [2048, 2048], "b": [2048, 2048]], params: [:],
            flops: 2.0 * 2048 * 2048 * 2048
        ) { _ = matmul(a, b) })
    func attn(_ name: String, lq: Int, lk: Int, c: Int, heads: Int) {
        let q = randomTensor([2, lq, c]), k = randomTensor([2, lk, c]), v = randomTensor([2, lk, c])
        cases.append(
            OpCase(
                name: name, op: "attention", shapes: ["q": [2, lq, c], "k": [2, lk, c], "v": [2, lk, c]], params: ["heads": heads],
                flops: 4.0 * Double(2 * lq * lk * c)
            ) { _ = attention(q: q, k: k, v: v, heads: heads) })
    }
    attn("attention self 2304 tok, 8×40, b2", lq: 2304, lk: 2304, c: 320, heads: 8)
    attn("attention cross 2304→77 tok, 8×40, b2", lq: 2304, lk: 77, c: 320, heads: 8)
    let gx = randomTensor([2, 320, 48, 48]), gw = randomTensor([320]), gb = randomTensor([320])
    cases.append(
        OpCase(name: "groupnorm 2×320×48×48 g32", op: "groupnorm", shapes: ["x": [2, 320, 48, 48]], params: ["groups": 32], flops: 0) {
            _ = groupNorm(gx, groups: 32, weight: gw, bias: gb, eps: 1e-5)
        })
    let lx = randomTensor([4608, 320]), lw = randomTensor([320]), lb = randomTensor([320])
    cases.append(
        OpCase(name: "layernorm 4608×320", op: "layernorm", shapes: ["x": [4608, 320]], params: [:], flops: 0) {
            _ = layerNorm(lx, weight: lw, bias: lb, eps: 1e-5)
        })
    let ex = randomTensor([4608, 1280], scale: 3)
    cases.append(OpCase(name: "gelu 4608×1280", op: "gelu", shapes: ["x": [4608, 1280]], params: [:], flops: 0) { _ = gelu(ex) })
    cases.append(OpCase(name: "silu 2×320×48×48", op: "silu", shapes: ["x": [2, 320, 48, 48]], params: [:], flops: 0) { _ = silu(gx) })
    let sx = randomTensor([16 * 2304, 77], scale: 4)
    cases.append(OpCase(name: "softmax 36864×77", op: "softmax", shapes: ["x": [16 * 2304, 77]], params: [:], flops: 0) { _ = softmax(sx) })
    let ux = randomTensor([2, 640, 24, 24])
    cases.append(
        OpCase(name: "upsample2x 2×640×24×24", op: "upsample2x", shapes: ["x": [2, 640, 24, 24]], params: [:], flops: 0) {
            _ = upsampleNearest2x(ux)
        })
    return cases
}

/// Median seconds of at least `repeat` calls after two warm-up calls; short ops repeat until they
/// have run ≈ 0.3 s (at most 300 calls), since a median of 10 sub-millisecond calls swings with thread
/// wake-ups. tools/bench/torch_ops.py times the torch side the same way.
func median(repeats: Int, _ body: () -> Void) -> Double {
    body()
    let t0 = DispatchTime.now().uptimeNanoseconds
    body()
    let first = max(1e-6, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    let count = max(repeats, min(300, Int(0.3 / first)))
    var times: [Double] = []
    for _ in 0..<count {
        let t = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
    }
    times.sort()
    return times[times.count / 2]
}

func runOpsBench(threads: Int, repeats: Int, python: String, filter: String?) throws {
    let cases = opCases().filter { filter == nil || $0.name.contains(filter!) }
    print(
        "# lgap-bench ops — \(threads) thread(s), OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "<unset>") (OpenBLAS kernel \(BLAS.coreName)); lgap GEMM backend \(BLAS.backend.rawValue) (\(BLAS.backend == .engine ? BLAS.engineKernel : BLAS.coreName))"
    )
    var ours: [String: Double] = [:]
    for c in cases { ours[c.name] = median(repeats: repeats, c.run) }
    let theirs = try runTorch(script: "tools/bench/torch_ops.py", input: cases.map(\.json), threads: threads, repeats: repeats, python: python)
    let raw = cases.first { $0.op == "matmul" }.map { $0.flops / (ours[$0.name] ?? 1) / 1e9 } ?? 0
    print("| op | lgap ms | torch ms | lgap GFLOP/s | torch GFLOP/s | lgap/torch speed | % of our sgemm rate |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in cases {
        let o = ours[c.name]!, t = theirs[c.name] ?? .nan
        let og = c.flops > 0 ? String(format: "%.0f", c.flops / o / 1e9) : "–"
        let tg = c.flops > 0 ? String(format: "%.0f", c.flops / t / 1e9) : "–"
        let pct = c.flops > 0 ? String(format: "%.0f%%", 100 * c.flops / o / 1e9 / raw) : "–"
        print(String(format: "| %@ | %.3f | %.3f | %@ | %@ | %.2f× | %@ |", c.name, o * 1000, t * 1000, og, tg, t / o, pct))
    }
}

/// Runs a tools/bench script with the cases on stdin and returns its JSON {name: seconds}.
func runTorch(script: String, input: Any, threads: Int, repeats: Int, python: String, extra: [String] = []) throws -> [String: Double] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = [script, "--threads", String(threads), "--repeat", String(repeats)] + extra
    let stdin = Pipe(), stdout = Pipe()
    p.standardInput = stdin
    p.standardOutput = stdout
    try p.run()
    stdin.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: input))
    try stdin.fileHandleForWriting.close()
    let data = stdout.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Double] else {
        throw BenchError.reference("\(python) \(script) failed (status \(p.terminationStatus))")
    }
    return obj
}

enum BenchError: Error, CustomStringConvertible {
    case reference(String)
    case usage(String)
    var description: String {
        switch self {
        case .reference(let s), .usage(let s): return s
        }
    }
}
