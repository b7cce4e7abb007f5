// The safetensors reader's validation and the scoped weight reader's bookkeeping.
import Digest
import Foundation
import NN
import Tensor
import TestSupport
import XCTest

final class SafeTensorsTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-st-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    /// Raw file: length prefix + header JSON + data bytes.
    func writeRaw(_ name: String, header: String, data: [UInt8]) -> String {
        var bytes = [UInt8]()
        let h = Array(header.utf8)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += h + data
        _ = FileManager.default.createFile(atPath: path(name), contents: Data(bytes))
        return path(name)
    }

    func testRoundTripF32AndF16() throws {
        let a = Tensor(shape: [2, 3], data: [1, -2, 3.5, 0, 1e-3, 65504])
        let b = Tensor(shape: [4], data: [0.1, 0.2, 0.3, 0.4])
        try SafeTensorsWriter.write(["a": a, "b.c": b], to: path("f32.safetensors"), metadata: ["format": "pt"])
        let f = try SafeTensorsFile(path: path("f32.safetensors"))
        XCTAssertEqual(f.names, ["a", "b.c"])
        XCTAssertEqual(f.metadata["format"], "pt")
        XCTAssertEqual(try f.tensor("a").scalars, a.scalars)
        XCTAssertEqual(try f.tensor("b.c").shape, [4])
        try SafeTensorsWriter.write(["a": a], to: path("f16.safetensors"), half: true)
        let h = try SafeTensorsFile(path: path("f16.safetensors"))
        XCTAssertEqual(h.tensors["a"]?.dtype, .f16)
        let c = compare(try h.tensor("a"), a, atol: 1e-3, rtol: 1e-3, name: "f16")
        XCTAssert(c.ok, c.report)
    }

    func testBF16AndIntegers() throws {
        // bf16 of 1.0 is 0x3F80, of -2.5 is 0xC020.
        let p = writeRaw(
            "bf16.safetensors", header: #"{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"i":{"dtype":"I64","shape":[2],"data_offsets":[4,20]}}"#,
            data: [0x80, 0x3F, 0x20, 0xC0] + [7, 0, 0, 0, 0, 0, 0, 0] + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(try f.tensor("x").scalars, [1.0, -2.5])
        XCTAssertEqual(try f.integers("i").values, [7, -1])
    }

    func testMalformedFilesAreRejected() throws {
        func assertBad(_ p: String, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try SafeTensorsFile(path: p), line: line) { e in
                XCTAssert("\(e)".contains(fragment), "\(e) should mention '\(fragment)'", line: line)
            }
        }
        _ = FileManager.default.createFile(atPath: path("short"), contents: Data([1, 2, 3]))
        assertBad(path("short"), "shorter than")
        var huge = [UInt8](); withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { huge.append(contentsOf: $0) }
        _ = FileManager.default.createFile(atPath: path("huge"), contents: Data(huge + [0x7B, 0x7D]))
        assertBad(path("huge"), "exceeds")
        assertBad(writeRaw("notjson", header: "{nope", data: []), "not a JSON object")
        assertBad(writeRaw("dtype", header: #"{"x":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), "unknown dtype")
        assertBad(writeRaw("outside", header: #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [0, 0, 0, 0]), "outside")
        assertBad(writeRaw("size", header: #"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "needs 12")
        assertBad(writeRaw("shape", header: #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "bad shape")
        assertBad(writeRaw("fields", header: #"{"x":{"dtype":"F32"}}"#, data: []), "needs dtype")
        XCTAssertThrowsError(try SafeTensorsFile(path: path("absent"))) { e in XCTAssert("\(e)".contains("No such file")) }
    }

    func testWeightScopeChecksShapesAndReportsLeftovers() throws {
        try SafeTensorsWriter.write(
            [
                "block.0.weight": Tensor(zeros: [4, 3]), "block.0.bias": Tensor(zeros: [4]),
                "block.1.weight": Tensor(zeros: [2, 4]), "extra.weight": Tensor(zeros: [1])
            ], to: path("w.safetensors"))
        let store = try WeightStore(path: path("w.safetensors"))
        let root = WeightScope(store)
        let l0 = try Linear(root.scope("block").scope(0), inFeatures: 3, outFeatures: 4)
        XCTAssertEqual(l0.weight.shape, [4, 3])
        XCTAssertThrowsError(try Linear(root.scope("block.1"), inFeatures: 4, outFeatures: 2)) { e in
            XCTAssertEqual(e as? WeightError, .missing(key: "block.1.bias", source: store.source))
        }
        XCTAssertThrowsError(try root.scope("block.1").tensor("weight", shape: [4, 2])) { e in
            XCTAssertEqual(e as? WeightError, .shapeMismatch(key: "block.1.weight", expected: [4, 2], actual: [2, 4]))
        }
        _ = try root.tensor("block.1.weight", shape: [2, 4])
        XCTAssertEqual(store.unusedKeys, ["extra.weight"])
        XCTAssertThrowsError(try store.checkAllUsed()) { e in XCTAssert("\(e)".contains("extra.weight")) }
        store.ignore { $0.hasPrefix("extra.") }
        XCTAssertNoThrow(try store.checkAllUsed())
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
