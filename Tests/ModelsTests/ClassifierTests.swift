// Classifier parity with PyTorch (Tests/Fixtures/classifiers, written by
// tools/goldens/make_classifier_goldens.py) and load errors for broken folders.
import Foundation
import ImageIO
@testable import Models
import NN
import Tensor
import TestSupport
import XCTest

final class ClassifierTests: XCTestCase {
    func folder(_ name: String) -> String { Fixtures.path("classifiers/\(name)") }

    func testTinyArchitecturesMatchPyTorch() throws {
        for name in ["tiny-cifar-resnet", "tiny-wide-resnet", "tiny-torchvision-resnet"] {
            let clf = try ImageClassifier(folder: folder(name))
            let golden = try SafeTensorsFile(path: folder(name) + "/golden.safetensors")
            let x = try golden.tensor("x")
            // Normalise exactly as the golden script did: (x − mean) / std on the float input.
            let mean = Tensor(shape: [1, 3, 1, 1], data: clf.config.mean), std = Tensor(shape: [1, 3, 1, 1], data: clf.config.std)
            let logits = clf.logits(preprocessed: (x - mean) / std)
            let c = compare(logits, try golden.tensor("logits"), atol: 1e-5, rtol: 1e-4, name: name)
            recordParity(c)
            XCTAssert(c.ok, c.report)
        }
    }

    func testResNet56OnRealImagesMatchesPyTorch() throws {
        let golden = try SafeTensorsFile(path: folder("resnet56-cifar64.safetensors"))
        let names = try JSONDecoder().decode([String].self, from: Data(golden.metadata["names"]!.utf8))
        guard let dir = try Fixtures.extractTestDev(names) else { throw XCTSkip("needs ../shared test-dev") }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let images = try names.map { try ImageCodec.decode(contentsOf: dir + "/" + $0) }
        let clf = try ImageClassifier(folder: Fixtures.repositoryRoot + "/models/cifar10-mini/classifier")
        let logits = clf.logits(images)
        let c = compare(logits, try golden.tensor("logits"), atol: 1e-4, rtol: 1e-4, name: "resnet56 × 64 CIFAR images")
        recordParity(c)
        XCTAssert(c.ok, c.report)
        let ours = clf.predictions(fromLogits: logits).map(\.labelIndex)
        let theirs = clf.predictions(fromLogits: try golden.tensor("logits")).map(\.labelIndex)
        XCTAssertEqual(ours, theirs)
    }

    func testResizePolicies() throws {
        let clf = try ImageClassifier(folder: folder("tiny-torchvision-resnet"))
        // 100×80 → shorter side 72 → 90×72 → centre crop 64×64.
        let img = RGBImage(width: 100, height: 80, pixels: (0..<(100 * 80 * 3)).map { UInt8($0 % 251) })
        let r = clf.resized(img)
        XCTAssertEqual([r.width, r.height], [64, 64])
        let cifar = try ImageClassifier(folder: folder("tiny-cifar-resnet"))
        XCTAssertEqual(cifar.resized(img).width, 32)
        XCTAssertEqual(cifar.classify([img, img]).count, 2)
    }

    /// Copies a fixture folder so a test can break it.
    func brokenCopy(_ name: String, edit: (String) throws -> Void) throws -> String {
        let dst = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-broken-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: folder(name), toPath: dst)
        try edit(dst)
        return dst
    }

    func rewriteWeights(_ dir: String, _ change: (inout [String: Tensor]) -> Void) throws {
        let f = try SafeTensorsFile(path: dir + "/model.safetensors")
        var all: [String: Tensor] = [:]
        for n in f.names where [.f32, .f16].contains(f.tensors[n]!.dtype) { all[n] = try f.tensor(n) }
        change(&all)
        try SafeTensorsWriter.write(all, to: dir + "/model.safetensors")
    }

    func testBrokenFoldersNameTheProblem() throws {
        let missing = try brokenCopy("tiny-cifar-resnet") { d in try self.rewriteWeights(d) { $0["layer2.0.bn1.running_var"] = nil } }
        XCTAssertThrowsError(try ImageClassifier(folder: missing)) { XCTAssert("\($0)".contains("missing weight 'layer2.0.bn1.running_var'"), "\($0)") }

        let extra = try brokenCopy("tiny-cifar-resnet") { d in try self.rewriteWeights(d) { $0["layer9.weight"] = Tensor(zeros: [2]) } }
        XCTAssertThrowsError(try ImageClassifier(folder: extra)) { XCTAssert("\($0)".contains("layer9.weight"), "\($0)") }

        let misshaped = try brokenCopy("tiny-cifar-resnet") { d in try self.rewriteWeights(d) { $0["linear.weight"] = Tensor(zeros: [10, 15]) } }
        XCTAssertThrowsError(try ImageClassifier(folder: misshaped)) {
            XCTAssert("\($0)".contains("'linear.weight' has shape [10, 15], expected [10, 16]"), "\($0)")
        }

        let unknown = try brokenCopy("tiny-cifar-resnet") { d in
            let p = d + "/config.json"
            let s = try String(contentsOfFile: p, encoding: .utf8).replacingOccurrences(of: "cifar_resnet", with: "vgg16")
            try s.write(toFile: p, atomically: true, encoding: .utf8)
        }
        XCTAssertThrowsError(try ImageClassifier(folder: unknown)) { XCTAssert("\($0)".contains("unknown architecture"), "\($0)") }

        let noField = try brokenCopy("tiny-cifar-resnet") { d in
            let p = d + "/config.json"
            let s = try String(contentsOfFile: p, encoding: .utf8).replacingOccurrences(of: "\"depth\"", with: "\"deepness\"")
            try s.write(toFile: p, atomically: true, encoding: .utf8)
        }
        XCTAssertThrowsError(try ImageClassifier(folder: noField)) { XCTAssert("\($0)".contains("missing field 'depth'"), "\($0)") }

        XCTAssertThrowsError(try ImageClassifier(folder: "/nonexistent/folder")) { XCTAssert("\($0)".contains("config.json: file not found"), "\($0)") }
        for d in [missing, extra, misshaped, unknown, noField] { try? FileManager.default.removeItem(atPath: d) }
    }
}
