// A tiny random pack with exactly the paper's layout (docs/packs/sd15-blip): SD 1.5's diffusers
// folders (Tests/Fixtures/diffusion/sd15-tiny), a BLIP captioning folder (Tests/Fixtures/blip/model),
// a classifier folder and pack.json from the template — loaded by Pack and run through every stage.
import Digest
import Foundation
import JobProcessing
import ImageIO
@testable import Models
import TestSupport
import XCTest

final class SDPackLayoutTests: XCTestCase {
    func testPaperLayoutLoadsAndRunsEveryStage() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("lgap-sdpack-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let sd = URL(fileURLWithPath: Fixtures.path("diffusion/sd15-tiny"))
        for part in ["text_encoder", "tokenizer", "unet", "vae", "scheduler", "model_index.json"] {
            try fm.createSymbolicLink(atPath: dir + "/" + part, withDestinationPath: sd.appendingPathComponent(part).resolvingSymlinksInPath().path)
        }
        try fm.createSymbolicLink(atPath: dir + "/captioner", withDestinationPath: Fixtures.path("blip/model"))
        try fm.createSymbolicLink(atPath: dir + "/classifier", withDestinationPath: Fixtures.path("classifiers/tiny-cifar-resnet"))
        // The template, with the tiny model's working size (its VAE has 4 blocks: latent 8 → 64 px).
        var manifest = try XCTUnwrap(
            JSONSerialization.jsonObject(
                with: Data(
                    contentsOf: URL(
                        fileURLWithPath:
                            Fixtures.repositoryRoot + "/docs/packs/sd15-blip/pack.json"))) as? [String: Any])
        manifest["image_size"] = [64, 64]
        manifest["purification"] = ["strength": 0.5, "steps": 10, "guidance": 5.0]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: dir + "/pack.json"))

        let pack = try Pack(folder: dir)
        XCTAssertNotNil(pack.purifier?.vae, "the latent pack loads its VAE")
        let processor = JobProcessor(pack: pack, options: ProcessorOptions())
        XCTAssertEqual(processor.stages, [.decode, .caption, .purify, .classify])
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("images/rgb.png"))))
        let item = JobItem(id: "layout", input: png, format: nil, parameters: pack.parameters(seed: 3), inputSHA256: SHA256.hex(png))
        _ = processor.run([item])
        XCTAssertNil(item.failure.map { "\($0)" })
        XCTAssertEqual(item.stagesRun, [.decode, .caption, .purify, .classify])
        let input = try ImageCodec.decode(png)
        let purified = try ImageCodec.decode(try XCTUnwrap(item.purifiedPNG))
        XCTAssertEqual([purified.width, purified.height], [input.width, input.height], "purified back at the input's size")
        XCTAssertNotNil(item.caption)
        XCTAssertNotNil(item.prediction)
    }
}
