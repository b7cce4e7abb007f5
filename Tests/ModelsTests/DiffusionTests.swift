// The purifier's parts and whole against diffusers/transformers: Tests/Fixtures/diffusion, written by
// tools/goldens/make_diffusion_goldens.py (sd15-tiny has exactly SD 1.5's folder layout).
import Foundation
@testable import Models
import NN
import Tensor
import TestSupport
import XCTest

final class DiffusionTests: XCTestCase {
    let sd = Fixtures.path("diffusion/sd15-tiny")
    let pixel = Fixtures.path("diffusion/pixel-tiny")

    func golden(_ folder: String) throws -> SafeTensorsFile { try SafeTensorsFile(path: folder + "/golden.safetensors") }

    func check(
        _ a: Tensor, _ e: Tensor, _ name: String, atol: Float = 1e-5, rtol: Float = 1e-4,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let c = compare(a, e, atol: atol, rtol: rtol, name: name)
        recordParity(c)
        XCTAssert(c.ok, c.report, file: file, line: line)
    }

    func testCLIPTokenizerMatchesTransformers() throws {
        struct Case: Decodable { let text: String; let ids: [Int]; let unpadded: [Int] }
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("diffusion/clip-tokenizer.json"))))
        XCTAssertGreaterThanOrEqual(cases.count, 300)
        var tokenizers = [try CLIPTokenizer(folder: sd + "/tokenizer")]
        let gz = Fixtures.shared + "/data/tokenizers/clip/bpe_simple_vocab_16e6.txt.gz"
        if FileManager.default.fileExists(atPath: gz) { tokenizers.append(try CLIPTokenizer(gzippedMerges: gz)) }
        for tok in tokenizers {
            var wrong: [String] = []
            for c in cases where tok(c.text) != c.ids || tok(c.text, pad: false, truncate: false) != c.unpadded { wrong.append(c.text) }
            XCTAssertEqual(wrong, [], "\(wrong.count) of \(cases.count) strings tokenised differently")
        }
    }

    func testRandnMatchesTorch() throws {
        let g = try SafeTensorsFile(path: Fixtures.path("diffusion/randn.safetensors"))
        for (seed, shape) in [
            (UInt64(0), [1]), (1, [5]), (2, [15]), (3, [16]), (4, [17]), (5, [33]), (6, [3, 32, 32]),
            (7, [2, 4, 8, 8]), (UInt64(1) << 32 + 9, [20]), (123456789, [40])
        ] {
            var gen = TorchGenerator(seed: seed)
            check(gen.randn(shape), try g.tensor("seed\(seed)"), "randn seed \(seed) \(shape)", atol: 1e-5, rtol: 1e-5)
        }
        var gen = TorchGenerator(seed: 42)
        for (i, shape) in [[1, 4, 8, 8], [2, 4, 8, 8], [3], [3, 7]].enumerated() {
            check(gen.randn(shape), try g.tensor("seq.\(i)"), "randn sequence draw \(i)", atol: 1e-5, rtol: 1e-5)
        }
    }

    func testTextEncoderUNetAndVAE() throws {
        let g = try golden(sd)
        let text = try CLIPTextModel(folder: sd + "/text_encoder")
        let (shape, flat) = try g.integers("text.ids")
        let ids = (0..<shape[0]).map { Array(flat[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        check(try text(ids), try g.tensor("text.out"), "CLIP text encoder")

        let unet = try UNet2DConditionModel(folder: sd + "/unet")
        let sample = try g.tensor("unet.sample"), ctx = try g.tensor("unet.context")
        check(unet(sample, timesteps: [981, 981], context: ctx), try g.tensor("unet.t981"), "UNet t=981", atol: 1e-4)
        check(unet(sample, timesteps: [10, 10], context: ctx), try g.tensor("unet.t10"), "UNet t=10", atol: 1e-4)

        let vae = try AutoencoderKL(folder: sd + "/vae")
        let post = vae.encode(try g.tensor("vae.image") * Float(2) + Float(-1))
        check(post.mean, try g.tensor("vae.mean"), "VAE encode mean", atol: 1e-4)
        check(post.std, try g.tensor("vae.std"), "VAE encode std", atol: 1e-4)
        check(vae.decode(try g.tensor("vae.z")), try g.tensor("vae.decoded"), "VAE decode", atol: 1e-4)
    }

    func testScheduler() throws {
        let g = try golden(sd)
        let base = try DDIMScheduler(folder: sd + "/scheduler")
        check(Tensor(shape: [1000], data: base.alphasCumprod), try g.tensor("sched.alphas_cumprod"), "ᾱ scaled_linear", atol: 0, rtol: 1e-6)
        var lin = SchedulerConfig()
        lin.betaSchedule = "linear"
        check(
            Tensor(shape: [1000], data: try DDIMScheduler(config: lin).alphasCumprod), try g.tensor("sched.linear.alphas_cumprod"),
            "ᾱ linear", atol: 0, rtol: 1e-6)
        var cosine = SchedulerConfig()
        cosine.betaSchedule = "squaredcos_cap_v2"
        check(
            Tensor(shape: [1000], data: try DDIMScheduler(config: cosine).alphasCumprod), try g.tensor("sched.cos.alphas_cumprod"),
            "ᾱ squaredcos_cap_v2", atol: 0, rtol: 1e-5)
        let cases = try JSONDecoder().decode([String: [Int]].self, from: Data(g.metadata["scheduler"]!.utf8))
        for (name, expected) in cases {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            if parts[0] == "img2img" {
                let p = parts[1].split(separator: ".", maxSplits: 1)
                XCTAssertEqual(base.img2imgTimesteps(steps: Int(p[0])!, strength: Double(p[1])!), expected, name)
            } else {
                var c = base.config
                c.timestepSpacing = parts[0]
                XCTAssertEqual(try DDIMScheduler(config: c).timesteps(steps: Int(parts[1])!), expected, name)
            }
        }
        let x = try g.tensor("step.x"), e = try g.tensor("step.e"), noise = try g.tensor("step.noise")
        check(base.step(modelOutput: e, timestep: 481, sample: x, steps: 50), try g.tensor("step.eps0"), "DDIM step eta 0")
        check(base.step(modelOutput: e, timestep: 481, sample: x, steps: 50, eta: 0.7, varianceNoise: noise), try g.tensor("step.eps07"), "DDIM step eta 0.7")
        var v = base.config
        v.predictionType = "v_prediction"
        check(try DDIMScheduler(config: v).step(modelOutput: e, timestep: 481, sample: x, steps: 50), try g.tensor("step.v0"), "DDIM step v-prediction")
    }

    struct PurifyCase: Decodable {
        let caption: String, strength: Double, steps: Int, guidance: Double, seed: UInt64, eta: Double, ensemble: Int
        var parameters: PurificationParameters {
            PurificationParameters(strength: strength, steps: steps, guidance: guidance, eta: eta, seed: seed, ensemble: ensemble)
        }
    }

    func psnr(_ a: Tensor, _ b: Tensor) -> Double {
        let x = a.scalars, y = b.scalars
        let mse = zip(x, y).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(x.count)
        return mse == 0 ? .infinity : 10 * log10(1 / mse)
    }

    func testLatentImg2ImgMatchesDiffusersPipeline() throws {
        let g = try golden(sd)
        let purifier = try DiffusionPurifier(pack: sd, modelSize: nil)
        let cases = try JSONDecoder().decode([String: PurifyCase].self, from: Data(g.metadata["purify"]!.utf8))
        XCTAssertEqual(cases.count, 3)
        for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
            let out = try purifier.purify(try g.tensor("purify.image"), caption: c.caption, parameters: c.parameters)
            let expected = try g.tensor("purify.\(name)")
            check(out, expected, "SD img2img \(name)", atol: 1e-3, rtol: 0)
            XCTAssertGreaterThanOrEqual(psnr(out, expected), 60, "SD img2img \(name) PSNR")
        }
    }

    func testPixelPurifierMatchesReference() throws {
        let g = try golden(pixel)
        let purifier = try DiffusionPurifier(pack: pixel, modelSize: (16, 16), resizeMode: .bicubic)
        XCTAssertNil(purifier.vae)
        let cases = try JSONDecoder().decode([String: PurifyCase].self, from: Data(g.metadata["purify"]!.utf8))
        for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
            let out = try purifier.purify(try g.tensor("image"), caption: c.caption, parameters: c.parameters)
            let expected = try g.tensor(name)
            check(out, expected, "pixel purify \(name)", atol: 1e-3, rtol: 0)
            XCTAssertGreaterThanOrEqual(psnr(out, expected), 60, "pixel purify \(name) PSNR")
        }
    }

    /// A batch gives each image what it gets alone (its own generator; seeds and captions differ), and
    /// the first one still matches the reference. Both the latent (VAE) and the pixel pipeline, with eta > 0
    /// and ensembles where the golden cases have them.
    func testBatchedPurificationEqualsOneAtATime() throws {
        for (folder, size) in [(sd, nil), (pixel, (16, 16))] as [(String, (Int, Int)?)] {
            let g = try golden(folder)
            let purifier = try DiffusionPurifier(pack: folder, modelSize: size, resizeMode: .bicubic)
            let image = try g.tensor(folder == sd ? "purify.image" : "image")
            let cases = try JSONDecoder().decode([String: PurifyCase].self, from: Data(g.metadata["purify"]!.utf8))
            for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
                let requests = (0..<3).map { i -> PurificationRequest in
                    var p = c.parameters
                    p.seed += UInt64(i)
                    return PurificationRequest(image: i == 1 ? image * Float(0.9) : image, caption: i == 2 ? "" : c.caption, parameters: p)
                }
                let batched = try purifier.purify(requests)
                XCTAssertEqual(batched.count, 3)
                for (i, r) in requests.enumerated() {
                    let alone = try purifier.purify(r.image, caption: r.caption, parameters: r.parameters)
                    check(batched[i], alone, "\(folder.split(separator: "/").last!) \(name) batch item \(i) vs alone", atol: 1e-4, rtol: 0)
                }
                let expected = try g.tensor(folder == sd ? "purify.\(name)" : name)
                check(batched[0], expected, "\(name) batched vs reference", atol: 1e-3, rtol: 0)
            }
            // Requests with different schedules are refused, not silently run with the first one's.
            var other = cases.values.first!.parameters
            other.steps += 1
            let mixed = [
                PurificationRequest(image: image, caption: "", parameters: cases.values.first!.parameters),
                PurificationRequest(image: image, caption: "", parameters: other)
            ]
            XCTAssertThrowsError(try purifier.purify(mixed))
        }
    }

    func testParametersOutOfRangeAreRefused() {
        let ok = PurificationParameters(strength: 0.5, steps: 50, guidance: 5, seed: 1)
        XCTAssertNoThrow(try ok.validate())
        for (bad, fragment) in [
            (
                {
                    var p = ok; p.strength = 0; return p
                }(), "strength"
            ),
            (
                {
                    var p = ok; p.strength = 1.5; return p
                }(), "strength"
            ),
            (
                {
                    var p = ok; p.steps = 0; return p
                }(), "steps"
            ),
            (
                {
                    var p = ok; p.guidance = .nan; return p
                }(), "guidance"
            ),
            (
                {
                    var p = ok; p.ensemble = 0; return p
                }(), "ensemble"
            ),
            (
                {
                    var p = ok; p.strength = 0.01; return p
                }(), "no denoising step"
            )
        ] {
            XCTAssertThrowsError(try bad.validate()) { XCTAssert("\($0)".contains(fragment), "\($0)") }
        }
    }

    func copyFolder(_ src: String) throws -> String {
        let dst = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-diff-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: src, toPath: dst)
        return dst
    }

    func testBrokenFoldersNameTheProblem() throws {
        XCTAssertThrowsError(try UNet2DConditionModel(folder: "/nonexistent")) { XCTAssert("\($0)".contains("config.json: file not found"), "\($0)") }
        let unknown = try copyFolder(sd + "/unet")
        defer { try? FileManager.default.removeItem(atPath: unknown) }
        let cfg = unknown + "/config.json"
        try String(contentsOfFile: cfg, encoding: .utf8).replacingOccurrences(of: "\"DownBlock2D\"", with: "\"KDownBlock2D\"")
            .write(toFile: cfg, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try UNet2DConditionModel(folder: unknown)) { XCTAssert("\($0)".contains("down block type 'KDownBlock2D'"), "\($0)") }

        let misshaped = try copyFolder(sd + "/vae")
        defer { try? FileManager.default.removeItem(atPath: misshaped) }
        let vcfg = misshaped + "/config.json"
        try String(contentsOfFile: vcfg, encoding: .utf8).replacingOccurrences(of: "\"latent_channels\": 4", with: "\"latent_channels\": 8")
            .write(toFile: vcfg, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AutoencoderKL(folder: misshaped)) { XCTAssert("\($0)".contains("has shape"), "\($0)") }

        let noVocab = try copyFolder(sd + "/tokenizer")
        defer { try? FileManager.default.removeItem(atPath: noVocab) }
        try FileManager.default.removeItem(atPath: noVocab + "/merges.txt")
        XCTAssertThrowsError(try CLIPTokenizer(folder: noVocab)) { XCTAssert("\($0)".contains("merges.txt: file not found"), "\($0)") }
    }
}
