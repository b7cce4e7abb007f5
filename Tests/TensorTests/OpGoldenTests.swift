// Every op against PyTorch: Tests/Fixtures/ops.safetensors, written by tools/goldens/make_op_goldens.py.
import Foundation
import NN
import Tensor
import TestSupport
import XCTest

final class OpGoldenTests: XCTestCase {
    var g: GoldenFile!

    override func setUpWithError() throws { g = try GoldenFile("ops.safetensors") }

    func check(
        _ actual: Tensor, _ caseName: String, role: String = "out", atol: Float = 1e-5, rtol: Float = 1e-4,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let c = compare(actual, try g.tensor(caseName, role), atol: atol, rtol: rtol, name: caseName)
        recordParity(c)
        XCTAssert(c.ok, c.report, file: file, line: line)
    }

    func testMatmulLinearBmm() throws {
        for c in ["matmul.4d", "matmul.2d"] {
            try check(matmul(try g.tensor(c, "a"), try g.tensor(c, "b")), c)
        }
        try check(
            linear(
                try g.tensor("linear.bias", "x"), weight: try g.tensor("linear.bias", "w"),
                bias: try g.tensor("linear.bias", "b")), "linear.bias")
        try check(linear(try g.tensor("linear.nobias", "x"), weight: try g.tensor("linear.nobias", "w")), "linear.nobias")
        try check(bmm(try g.tensor("bmm.plain", "a"), try g.tensor("bmm.plain", "b")), "bmm.plain")
        try check(bmm(try g.tensor("bmm.transB", "a"), try g.tensor("bmm.transB", "b"), transposeB: true), "bmm.transB")
    }

    func testConv2d() throws {
        let cases = g.cases("conv.")
        XCTAssertEqual(cases.count, 11)
        for c in cases {
            let p = g.params(c)
            let s = p["stride"] as! Int, pad = p["padding"] as! Int
            let bias = g.has(c, "b") ? try g.tensor(c, "b") : nil
            let y = conv2d(try g.tensor(c, "x"), weight: try g.tensor(c, "w"), bias: bias, stride: (s, s), padding: (pad, pad))
            try check(y, c, atol: 1e-4)
        }
    }

    func testBatchNormAndFolding() throws {
        let c = "convbn"
        let folded = foldBatchNorm(
            weight: try g.tensor(c, "w"), bias: try g.tensor(c, "b"), gamma: try g.tensor(c, "gamma"),
            beta: try g.tensor(c, "beta"), runningMean: try g.tensor(c, "mean"),
            runningVar: try g.tensor(c, "var"), eps: 1e-5)
        try check(conv2d(try g.tensor(c, "x"), weight: folded.weight, bias: folded.bias, padding: (1, 1)), c, atol: 1e-4)
        let b = "batchnorm"
        try check(
            batchNorm(
                try g.tensor(b, "x"), runningMean: try g.tensor(b, "mean"), runningVar: try g.tensor(b, "var"),
                weight: try g.tensor(b, "gamma"), bias: try g.tensor(b, "beta"), eps: 1e-5), b)
    }

    func testNorms() throws {
        for c in g.cases("groupnorm.") {
            let p = g.params(c)
            try check(
                groupNorm(
                    try g.tensor(c, "x"), groups: p["groups"] as! Int, weight: try g.tensor(c, "w"),
                    bias: try g.tensor(c, "b"), eps: Float(p["eps"] as! Double)), c)
        }
        for c in g.cases("layernorm.") {
            let p = g.params(c)
            try check(
                layerNorm(
                    try g.tensor(c, "x"), weight: try g.tensor(c, "w"), bias: try g.tensor(c, "b"),
                    eps: Float(p["eps"] as! Double)), c)
        }
    }

    func testActivationsAndSoftmax() throws {
        let x = try g.tensor("act.relu", "x")
        try check(relu(x), "act.relu", atol: 0, rtol: 0)
        try check(silu(x), "act.silu", atol: 1e-6, rtol: 1e-5)
        try check(gelu(x), "act.gelu", atol: 1e-6, rtol: 1e-5)
        try check(geluTanh(x), "act.gelu_tanh", atol: 1e-6, rtol: 1e-5)
        try check(quickGelu(x), "act.quick_gelu", atol: 1e-6, rtol: 1e-5)
        try check(softmax(try g.tensor("softmax.a", "x")), "softmax.a", atol: 1e-6)
        try check(softmax(try g.tensor("softmax.big", "x")), "softmax.big", atol: 1e-6)
    }

    func testAttention() throws {
        for c in g.cases("attn.") {
            let p = g.params(c)
            let mask = g.has(c, "mask") ? try g.tensor(c, "mask") : nil
            let y = attention(
                q: try g.tensor(c, "q"), k: try g.tensor(c, "k"), v: try g.tensor(c, "v"),
                heads: p["heads"] as! Int, causal: (p["causal"] as? Bool) ?? false, keyMask: mask)
            try check(y, c)
        }
    }

    func testSpatialOps() throws {
        try check(upsampleNearest2x(try g.tensor("upsample2x", "x")), "upsample2x", atol: 0, rtol: 0)
        for c in g.cases("avgpool.") {
            let p = g.params(c)
            try check(
                avgPool2d(
                    try g.tensor(c, "x"), kernel: p["kernel"] as! Int, stride: p["stride"] as? Int,
                    padding: p["padding"] as! Int), c, atol: 1e-6)
        }
        try check(globalAvgPool(try g.tensor("gap", "x")), "gap", atol: 1e-6)
        try check(embedding(try g.integers("embedding", "ids"), table: try g.tensor("embedding", "table")), "embedding", atol: 0, rtol: 0)
        try check(subsample2d(try g.tensor("subsample2", "x"), step: 2), "subsample2", atol: 0, rtol: 0)
    }

    func testLayoutOps() throws {
        let c = "concat.axis1"
        try check(concat([try g.tensor(c, "a"), try g.tensor(c, "b"), try g.tensor(c, "c")], axis: 1), c, atol: 0, rtol: 0)
        for c in g.cases("permute.") {
            let dims = g.params(c)["dims"] as! [Int]
            try check(permute(try g.tensor(c, "x"), dims), c, atol: 0, rtol: 0)
        }
        let parts = split(try g.tensor("split.axis3", "x"), sizes: [2, 1, 2], axis: 3)
        for (i, part) in parts.enumerated() { try check(part, "split.axis3", role: "out\(i)", atol: 0, rtol: 0) }
    }

    func testBroadcasting() throws {
        for c in g.cases("bcast.") {
            let a = try g.tensor(c, "a"), b = try g.tensor(c, "b")
            let y: Tensor
            switch g.params(c)["op"] as! String {
            case "add": y = a + b
            case "sub": y = a - b
            case "mul": y = a * b
            default: XCTFail("unknown op"); continue
            }
            try check(y, c, atol: 1e-6)
        }
    }

    func testInterpolate() throws {
        for c in g.cases("interp.") {
            let p = g.params(c)
            let size = p["size"] as! [Int]
            let mode = InterpolationMode(rawValue: p["mode"] as! String)!
            try check(interpolate(try g.tensor(c, "x"), height: size[0], width: size[1], mode: mode), c, atol: 1e-6)
        }
    }
}
