// Naive reference implementations of the GEMM-backed ops, checked against the fast paths on random
// shapes the goldens do not cover (odd sizes, batch > 1, the im2col row-band path).
import Tensor
import TestSupport
import XCTest

final class NaiveReferenceTests: XCTestCase {
    struct LCG {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1
        }
    }

    func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = LCG(state: seed)
        return Tensor(shape: shape, data: (0..<Tensor.elementCount(shape)).map { _ in g.next() })
    }

    /// Direct 7-loop convolution.
    func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: Int, pad: Int) -> Tensor {
        let (n, ci, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (co, k) = (w.shape[0], w.shape[2])
        let ho = (h + 2 * pad - k) / stride + 1, wo = (wd + 2 * pad - k) / stride + 1
        let xs = x.scalars, ws = w.scalars, bs = b?.scalars
        var out = [Float](repeating: 0, count: n * co * ho * wo)
        for i in 0..<n {
            for o in 0..<co {
                for y in 0..<ho {
                    for xx in 0..<wo {
                        var acc: Float = bs?[o] ?? 0
                        for c in 0..<ci {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = y * stride - pad + ky, ix = xx * stride - pad + kx
                                    if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                                        acc += xs[((i * ci + c) * h + iy) * wd + ix] * ws[((o * ci + c) * k + ky) * k + kx]
                                    }
                                }
                            }
                        }
                        out[((i * co + o) * ho + y) * wo + xx] = acc
                    }
                }
            }
        }
        return Tensor(shape: [n, co, ho, wo], data: out)
    }

    func testConvMatchesNaive() {
        for (i, (n, ci, h, w, co, k, s, p)) in [
            (3, 5, 13, 9, 7, 3, 1, 1), (2, 3, 10, 10, 4, 3, 2, 1), (1, 4, 6, 7, 2, 1, 1, 0),
            (2, 2, 9, 9, 3, 2, 2, 0)
        ].enumerated() {
            let x = random([n, ci, h, w], seed: UInt64(i * 3 + 1)), wt = random([co, ci, k, k], seed: UInt64(i * 3 + 2))
            let b = random([co], seed: UInt64(i * 3 + 3))
            let c = compare(
                conv2d(x, weight: wt, bias: b, stride: (s, s), padding: (p, p)), naiveConv(x, wt, b, stride: s, pad: p),
                atol: 1e-4, rtol: 1e-4, name: "conv naive \(i)")
            XCTAssert(c.ok, c.report)
        }
    }

    func testConvRowBandsMatchSinglePass() {
        // 64 channels × 3×3 at 96×96 needs more columns than one im2col band holds.
        let x = random([1, 64, 96, 96], seed: 9), w = random([8, 64, 3, 3], seed: 10)
        let y = conv2d(x, weight: w, bias: nil, padding: (1, 1))
        let ref = naiveConv(x, w, nil, stride: 1, pad: 1)
        let c = compare(y, ref, atol: 1e-3, rtol: 1e-4, name: "conv bands")
        XCTAssert(c.ok, c.report)
    }

    func testPrepackedPointwiseConvMatchesNaive() {
        // 1×1 layers with packed weights: a batch-1 split by output channel (uneven, 300 rows), a
        // batch-1 split by pixel (a part narrower than one panel), a batch, and the unpacked path.
        for (i, (n, ci, h, w, co)) in [(1, 128, 7, 7, 300), (1, 32, 40, 41, 24), (3, 16, 5, 5, 12), (1, 8, 3, 3, 5)].enumerated() {
            let x = random([n, ci, h, w], seed: UInt64(800 + i)), wt = random([co, ci, 1, 1], seed: UInt64(900 + i))
            let b = random([co], seed: UInt64(1000 + i))
            let ref = naiveConv(x, wt, b, stride: 1, pad: 0)
            let packed = compare(
                conv2d(x, weight: wt, bias: b, packed: PackedWeights(convWeight: wt)), ref,
                atol: 1e-4, rtol: 1e-4, name: "pointwise packed \(i)")
            XCTAssert(packed.ok, packed.report)
            let plain = compare(conv2d(x, weight: wt, bias: b), ref, atol: 1e-4, rtol: 1e-4, name: "pointwise \(i)")
            XCTAssert(plain.ok, plain.report)
        }
    }

    func testDirectConvMatchesNaive() throws {
        var ran = 0
        for (i, (n, ci, h, w, co, k, p)) in [
            (2, 5, 13, 9, 7, 3, 1), (1, 16, 32, 32, 16, 3, 1), (3, 8, 8, 8, 20, 3, 1), (1, 3, 9, 11, 12, 5, 2),
            (2, 4, 6, 7, 9, 1, 0), (1, 2, 5, 5, 3, 3, 0),
            // ≥ 32 channels on small maps: the channel-vector kernel (a partial
            // 32-channel block, a row of 8 + 3 pixels, a 5×5 kernel).
            (2, 16, 8, 8, 40, 3, 1), (1, 8, 5, 11, 32, 3, 1), (1, 4, 9, 9, 33, 5, 2)
        ].enumerated() {
            let x = random([n, ci, h, w], seed: UInt64(100 + i)), wt = random([co, ci, k, k], seed: UInt64(200 + i))
            let b = random([co], seed: UInt64(300 + i))
            guard let dw = DirectConvWeights(convWeight: wt, stride: 1) else { continue }
            ran += 1
            let c = compare(
                conv2dDirect(x, weights: dw, bias: b, padding: (p, p)), naiveConv(x, wt, b, stride: 1, pad: p),
                atol: 1e-4, rtol: 1e-4, name: "direct conv \(i)")
            XCTAssert(c.ok, c.report)
        }
        if ran == 0 { throw XCTSkip("no AVX-512: the direct convolution kernel is not used on this CPU") }
    }

    func testWinogradConvMatchesNaive() {
        // Odd output sizes (partial tiles), padding 0–2, batches, more channels than one GEMM K slice,
        // and an image large enough to be split into several tile-row blocks.
        for (i, (n, ci, h, w, co, p)) in [
            (2, 5, 13, 9, 7, 1), (3, 40, 8, 8, 33, 1), (1, 17, 7, 12, 9, 0), (2, 3, 5, 4, 6, 2),
            (1, 260, 9, 7, 12, 1), (1, 200, 46, 46, 64, 1),
            // U over 2 MiB on a small map: split by output channel (uneven parts).
            (1, 192, 6, 7, 200, 1)
        ].enumerated() {
            let x = random([n, ci, h, w], seed: UInt64(400 + i)), wt = random([co, ci, 3, 3], seed: UInt64(500 + i))
            let b = random([co], seed: UInt64(600 + i))
            let y = conv2dWinograd(x, weights: WinogradWeights(convWeight: wt), bias: b, padding: p)
            // Sums of up to 2,340 products of values in [-1, 1]: allow for float32 accumulation.
            let c = compare(y, naiveConv(x, wt, b, stride: 1, pad: p), atol: ci > 64 ? 1e-3 : 1e-4, rtol: 1e-4, name: "winograd conv \(i)")
            XCTAssert(c.ok, c.report)
        }
    }

    func testWinogradBatchIsBitwiseSingleImages() {
        // Batched purification promises the same bits as one image at a time.
        let x = random([3, 48, 10, 14], seed: 41), wt = random([40, 48, 3, 3], seed: 42), b = random([40], seed: 43)
        let weights = WinogradWeights(convWeight: wt)
        let batch = conv2dWinograd(x, weights: weights, bias: b, padding: 1).scalars
        let per = batch.count / 3
        for i in 0..<3 {
            let xi = Tensor(shape: [1, 48, 10, 14], data: Array(x.scalars[(i * 48 * 140)..<((i + 1) * 48 * 140)]))
            let single = conv2dWinograd(xi, weights: weights, bias: b, padding: 1).scalars
            XCTAssertEqual(single, Array(batch[(i * per)..<((i + 1) * per)]), "image \(i)")
        }
    }

    func testMaxPoolMatchesNaive() {
        // Windows cut by the padding on every side, a stride that leaves input unread, and ResNet-50's
        // stem pool on enough planes to be split over the workers.
        for (i, (n, c, h, w, k, s, p)) in [
            (2, 3, 9, 7, 3, 2, 1), (1, 2, 8, 8, 2, 2, 0), (1, 4, 5, 6, 3, 1, 1), (1, 1, 4, 9, 5, 3, 2),
            (1, 64, 112, 112, 3, 2, 1)
        ].enumerated() {
            let x = random([n, c, h, w], seed: UInt64(700 + i))
            let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
            let xs = x.scalars
            var ref = [Float](repeating: -.infinity, count: n * c * ho * wo)
            for plane in 0..<(n * c) {
                for y in 0..<ho {
                    for xx in 0..<wo {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let iy = y * s - p + ky, ix = xx * s - p + kx
                                if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                    ref[(plane * ho + y) * wo + xx] = max(ref[(plane * ho + y) * wo + xx], xs[(plane * h + iy) * w + ix])
                                }
                            }
                        }
                    }
                }
            }
            XCTAssertEqual(maxPool2d(x, kernel: k, stride: s, padding: p).scalars, ref, "max pool \(i)")
        }
    }

    func testWinogradChannelSplitIsBitwiseTileSplit() {
        // 200×192 weights (U ≈ 2.5 MiB): one 10×14 image is split over the workers by output channel,
        // a batch of 5 (175 tiles) by tile rows; each image must come out with the same bits.
        let x = random([5, 192, 10, 14], seed: 51), wt = random([200, 192, 3, 3], seed: 52), b = random([200], seed: 53)
        let weights = WinogradWeights(convWeight: wt)
        let batch = conv2dWinograd(x, weights: weights, bias: b, padding: 1).scalars
        let per = batch.count / 5, plane = 192 * 140
        for i in [0, 4] {
            let xi = Tensor(shape: [1, 192, 10, 14], data: Array(x.scalars[(i * plane)..<((i + 1) * plane)]))
            let single = conv2dWinograd(xi, weights: weights, bias: b, padding: 1).scalars
            XCTAssertEqual(single, Array(batch[(i * per)..<((i + 1) * per)]), "image \(i)")
        }
    }

    func testMatmulMatchesNaive() {
        let a = random([3, 17, 29], seed: 5), b = random([29, 13], seed: 6)
        let y = matmul(a, b)
        let av = a.scalars, bv = b.scalars
        var ref = [Float](repeating: 0, count: 3 * 17 * 13)
        for r in 0..<(3 * 17) { for j in 0..<13 { for t in 0..<29 { ref[r * 13 + j] += av[r * 29 + t] * bv[t * 13 + j] } } }
        let c = compare(y, Tensor(shape: [3, 17, 13], data: ref), atol: 1e-4, rtol: 1e-4, name: "matmul naive")
        XCTAssert(c.ok, c.report)
    }

    func testLargeBuffersAreReusedAndStillInitialised() {
        // Blocks of 32 MiB and more are kept for reuse (Tensor.swift): the same size gets the same
        // memory back, and initialising constructors still initialise it.
        let shape = [10 << 20]  // 40 MiB
        let address: Int = Tensor(repeating: 7, shape: shape).withData { Int(bitPattern: $0) }
        let zeros = Tensor(zeros: shape)
        XCTAssertEqual(zeros.withData { Int(bitPattern: $0) }, address, "a freed 40 MiB block is handed out again")
        XCTAssert(zeros.withData { p in (0..<(10 << 20)).allSatisfy { p[$0] == 0 } })
    }

    func testTensorCopyOnWrite() {
        let a = Tensor(shape: [2, 2], data: [1, 2, 3, 4])
        var b = a
        b[flat: 0] = 9
        XCTAssertEqual(a.scalars, [1, 2, 3, 4])
        XCTAssertEqual(b.scalars, [9, 2, 3, 4])
        let r = a.reshaped([4])
        XCTAssertEqual(r.shape, [4])
        XCTAssertEqual(a.reshaped([-1, 1]).shape, [4, 1])
    }
}
