// The door without a socket: frames and limits in, an admitted job or a refusal with its reason out.
// Covers every reason Admission can give, the id echo on refusals, the cost model and the in-flight
// memory refusal, and the door-time refusals of variants the decoder cannot run (CMYK JPEG, 16-bit PPM).
import Foundation
import ImageIO
import JobModel
import Models
@testable import Service
import ServiceHarness
import TestSupport
import XCTest

final class AdmissionTests: XCTestCase {
    var config = DaemonConfig()

    func admission(maxSteps: Int = 1000) -> Admission {
        let policy = ParameterPolicy(
            resolve: { p in
                PurificationParameters(
                    strength: p.strength ?? 0.1, steps: p.steps ?? 50, guidance: p.guidance ?? 3, eta: p.eta ?? 0,
                    seed: p.seed ?? 1, ensemble: p.ensemble ?? 5)
            },
            validate: { p in
                try p.validate()
                if p.steps > maxSteps { throw ModelError.badInput("steps \(p.steps) exceeds \(maxSteps)") }
            })
        return Admission(limits: Admission.Limits(config), policy: policy, costModel: CostModel(modelPixels: 32 * 32, hasPurifier: true))
    }

    func header(_ o: [String: Any]) -> [UInt8] { Producer.json(o) }

    func refusal(_ frames: [[UInt8]], dropped: Int = 0, _ a: Admission? = nil) -> Admission.Refusal? {
        if case .failure(let r) = (a ?? admission()).admit(frames: frames, dropped: dropped) { return r }
        return nil
    }

    func testAdmitsAGoodJobWithItsResolvedParametersAndCost() throws {
        let png = try TestImages.png
        guard case .success(let a) = admission().admit(frames: [header(["id": "ok", "params": ["ensemble": 2]]), png], dropped: 0) else {
            return XCTFail("refused a good job")
        }
        XCTAssertEqual(a.header.id, "ok")
        XCTAssertEqual(a.format, .png)
        XCTAssertEqual([a.width, a.height], [32, 32])
        XCTAssertEqual(a.parameters.ensemble, 2)
        // K × (P_model × S × G + P_input) = 2 × (1024 × 5 × 2 + 1024)
        XCTAssertEqual(a.cost, 2 * (1024 * 5 * 2 + 1024))
        XCTAssertEqual(a.memoryBytes, 32 * 1024 + 48 * 2 * 2 * 1024)
    }

    func testEveryDoorReasonEchoesTheClaimedID() throws {
        let png = try TestImages.png
        config.maxMessageBytes = 4096
        config.maxHeaderBytes = 512
        let a = admission(maxSteps: 100)
        let cases: [(String, [[UInt8]], Int, ReasonCode, String?)] = [
            ("one frame", [header(["id": "m"])], 0, .missingFrame, "m"),
            ("three frames", [header(["id": "e"]), png, [1]], 0, .extraFrames, "e"),
            ("frames dropped by the receiver", [header(["id": "d"]), png], 4, .extraFrames, "d"),
            ("not JSON", [Array("{".utf8), png], 0, .badHeader, nil),
            ("duplicate key", [Array(#"{"id":"dup","id":"dup"}"#.utf8), png], 0, .badHeader, "dup"),
            ("big header", [header(["id": "h", "meta": ["p": String(repeating: "x", count: 600)]]), png], 0, .headerTooLarge, nil),
            ("big frame", [header(["id": "f"]), [UInt8](repeating: 0, count: 5000)], 0, .frameTooLarge, "f"),
            ("empty image", [header(["id": "z"]), []], 0, .emptyImage, "z"),
            ("steps past the scheduler", [header(["id": "s", "params": ["steps": 101]]), png], 0, .badParams, "s"),
            ("seed ≥ 2^63", [header(["id": "sd", "params": ["seed": "9223372036854775808"]]), png], 0, .badParams, "sd"),
            ("GIF", [header(["id": "g"]), Array("GIF89a......".utf8)], 0, .unknownFormat, "g"),
            ("declared jpeg, is png", [header(["id": "fm", "format": "jpeg"]), png], 0, .formatMismatch, "fm"),
            ("bomb", [header(["id": "b"]), TestImages.pngClaiming(width: 100_000, height: 100_000)], 0, .imageTooLarge, "b"),
            ("CMYK JPEG", [header(["id": "cmyk"]), try TestImages.bytes("images/cmyk.jpg")], 0, .unsupportedImage, "cmyk"),
            ("16-bit PPM", [header(["id": "p16"]), Array("P6\n2 2\n65535\n".utf8) + [UInt8](repeating: 9, count: 24)], 0, .unsupportedImage, "p16")
        ]
        for (name, frames, dropped, reason, id) in cases {
            guard let r = refusal(frames, dropped: dropped, a) else { XCTFail("\(name): admitted"); continue }
            XCTAssertEqual(r.reason, reason, "\(name): \(r.message)")
            XCTAssertEqual(r.claimedID, id, name)
            XCTAssertFalse(r.message.isEmpty, name)
        }
    }

    func testCostAndMemoryLimits() throws {
        let png = try TestImages.png
        config.maxJobCost = 100_000
        // 16 × (1024 × 50 × 2 + 1024) = 1,654,784 pixel-steps.
        let r = refusal([header(["id": "big", "params": ["ensemble": 16, "strength": 1.0, "steps": 50]]), png])
        XCTAssertEqual(r?.reason, .tooExpensive)
        XCTAssertEqual(r?.claimedID, "big")
        XCTAssertTrue(r?.message.contains("max_job_cost") ?? false, r?.message ?? "")
        config.maxJobCost = .max
        config.maxInflightBytes = 1 << 20
        // A 4096×4096 image: 32 × 16.7 M bytes in the pipeline, over a 1 MiB budget.
        let huge = TestImages.pngClaiming(width: 4096, height: 4096)
        XCTAssertEqual(refusal([header(["id": "mem"]), huge])?.reason, .tooExpensive)
    }

    func testCostModel() {
        let p = PurificationParameters(strength: 0.1, steps: 50, guidance: 3, seed: 0, ensemble: 5)
        let m = CostModel(modelPixels: 1024, hasPurifier: true)
        XCTAssertEqual(m.cost(p, width: 32, height: 32), 5 * (1024 * 5 * 2 + 1024))
        var noGuidance = p
        noGuidance.guidance = 1
        XCTAssertEqual(m.cost(noGuidance, width: 32, height: 32), 5 * (1024 * 5 + 1024), "one UNet pass without guidance")
        XCTAssertEqual(CostModel(modelPixels: nil, hasPurifier: false).cost(p, width: 10, height: 10), 100, "classifier only")
        XCTAssertEqual(
            CostModel(modelPixels: nil, hasPurifier: true).cost(p, width: 64, height: 64), 5 * (4096 * 10 + 4096),
            "no model size: the input's")
    }
}
