// A tiny random pack with exactly the paper's layout (docs/packs/sd15-blip): SD 1.5's diffusers
// folders (Tests/Fixtures/diffusion/sd15-tiny), a BLIP captioning folder (Tests/Fixtures/blip/model),
// a classifier folder and pack.json from the template — loaded by Pack and run through every stage.
import Digest
import Foundation
import JobProcessing
import ImageIO
@testable import Models
import NN
import Tensor
import TestSupport
import XCTest

final class SDPackLayoutTests: XCTestCase {
    /// A temporary pack folder in the paper's layout (symlinks to the tiny fixtures) with the template's
    /// pack.json at the tiny model's working size, edited by `edit`; the caller removes it.
    static func assemble(
        classifier: String = Fixtures.path("classifiers/tiny-cifar-resnet"), edit: (inout [String: Any]) -> Void = { _ in }
    ) throws -> String {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("lgap-sdpack-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let sd = URL(fileURLWithPath: Fixtures.path("diffusion/sd15-tiny"))
        for part in ["text_encoder", "tokenizer", "unet", "vae", "scheduler", "model_index.json"] {
            try fm.createSymbolicLink(atPath: dir + "/" + part, withDestinationPath: sd.appendingPathComponent(part).resolvingSymlinksInPath().path)
        }
        try fm.createSymbolicLink(atPath: dir + "/captioner", withDestinationPath: Fixtures.path("blip/model"))
        try fm.createSymbolicLink(atPath: dir + "/classifier", withDestinationPath: classifier)
        // The template, with the tiny model's working size (its VAE has 4 blocks: latent 8 → 64 px).
        var manifest = try XCTUnwrap(
            JSONSerialization.jsonObject(
                with: Data(
                    contentsOf: URL(
                        fileURLWithPath:
                            Fixtures.repositoryRoot + "/docs/packs/sd15-blip/pack.json"))) as? [String: Any])
        manifest["image_size"] = [64, 64]
        manifest["purification"] = ["strength": 0.5, "steps": 10, "guidance": 5.0]
        edit(&manifest)
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: dir + "/pack.json"))
        return dir
    }

    func testPaperLayoutLoadsAndRunsEveryStage() throws {
        let dir = try Self.assemble()
        defer { try? FileManager.default.removeItem(atPath: dir) }

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

final class LegacyVAENamesTests: XCTestCase {
    /// SD 1.5's VAE as downloaded names its mid-block attention query/key/value/proj_attn (diffusers'
    /// deprecated AttentionBlock): the same weights under those names load and decode identically, and a
    /// file with both names for one weight is refused.
    func testDeprecatedAttentionNamesLoadAsTheCurrentOnes() throws {
        let fm = FileManager.default
        let vae = Fixtures.path("diffusion/sd15-tiny/vae")
        let file = try SafeTensorsFile(path: vae + "/diffusion_pytorch_model.safetensors")
        let current = try AutoencoderKL(folder: vae)
        var renamed: [String: Tensor] = [:], both: [String: Tensor] = [:]
        var legacyKeys = 0
        for key in file.tensors.keys {
            var old = key
            for (new, deprecated) in [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")]
            where key.contains(".attentions.") {
                old = old.replacingOccurrences(of: new, with: deprecated)
            }
            if old != key { legacyKeys += 1 }
            renamed[old] = try file.tensor(key)
            both[key] = try file.tensor(key)
            both[old] = try file.tensor(key)
        }
        XCTAssertEqual(legacyKeys, 16, "encoder and decoder mid-block attention: 4 projections × weight, bias × 2")
        for (name, weights) in [("legacy", renamed), ("both", both)] {
            let dir = fm.temporaryDirectory.appendingPathComponent("lgap-vae-\(name)-\(UUID().uuidString)").path
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? fm.removeItem(atPath: dir) }
            try fm.copyItem(atPath: vae + "/config.json", toPath: dir + "/config.json")
            try SafeTensorsWriter.write(weights, to: dir + "/diffusion_pytorch_model.safetensors")
            if name == "both" {
                XCTAssertThrowsError(try AutoencoderKL(folder: dir)) { XCTAssert("\($0)".contains("its current name"), "\($0)") }
                continue
            }
            let legacy = try AutoencoderKL(folder: dir)
            var g = TorchGenerator(seed: 4)
            let image = g.randn([1, 3, 64, 64])
            XCTAssertEqual(legacy.encode(image).mean.scalars, current.encode(image).mean.scalars)
            let z = g.randn([1, 4, 8, 8])
            XCTAssertEqual(legacy.decode(z).scalars, current.decode(z).scalars)
        }
    }
}
