// The LGAP reference code's semantics that the sd15-blip template selects, against goldens written by
// tools/goldens/make_reference_semantics_goldens.py: the CompVis noise schedule beside diffusers', torch
// bilinear resizing to the model size and back, BLIP's "a picture of " prompt with the captioner's input
// resized as a float tensor, and the classifier's resize applied before purification (ImageNet).
import Digest
import Foundation
import ImageIO
import JobProcessing
@testable import Models
import NN
import Tensor
import TestSupport
import XCTest

final class ReferenceSemanticsTests: XCTestCase {
    let sd = Fixtures.path("diffusion/sd15-tiny")

    struct PurifyCase: Decodable {
        let image: String, caption: String, strength: Double, steps: Int, guidance: Double, seed: UInt64, ensemble: Int
    }

    func check(_ a: Tensor, _ e: Tensor, _ name: String, atol: Float, file: StaticString = #filePath, line: UInt = #line) {
        let c = compare(a, e, atol: atol, rtol: 0, name: name)
        recordParity(c)
        XCTAssert(c.ok, c.report, file: file, line: line)
    }

    /// Both noise schedules at the paper's CIFAR (32 px → model size → 32 px, strength 0.5) and
    /// ImageNet (strength 0.1, K = 2) settings: diffusers' against StableDiffusionImg2ImgPipeline,
    /// CompVis' against ldm's DDIMSampler written out. The two differ by far more than the tolerance,
    /// so each golden pins its schedule.
    func testNoiseSchedulesMatchDiffusersAndCompVis() throws {
        let g = try SafeTensorsFile(path: sd + "/reference-semantics.safetensors")
        let cases = try JSONDecoder().decode([String: PurifyCase].self, from: Data(try XCTUnwrap(g.metadata["cases"]).utf8))
        XCTAssertEqual(Set(cases.keys), ["cifar", "imagenet"])
        for schedule in [NoiseSchedule.diffusers, .compvis] {
            let purifier = try DiffusionPurifier(pack: sd, modelSize: (64, 64), resizeMode: .bilinear, noiseSchedule: schedule)
            for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
                let p = PurificationParameters(strength: c.strength, steps: c.steps, guidance: c.guidance, seed: c.seed, ensemble: c.ensemble)
                let out = try purifier.purify(try g.tensor(c.image), caption: c.caption, parameters: p)
                // The CompVis golden runs p_sample_ddim's own arithmetic (not diffusers' step), whose float
                // rounding the tiny random UNet amplifies to ~1.5e-3 in places; a wrong schedule is 0.3 off.
                let expected = try g.tensor("\(name).\(schedule.rawValue)")
                check(out, expected, "\(name) \(schedule.rawValue)", atol: schedule == .compvis ? 2.5e-3 : 1e-3)
                XCTAssertGreaterThanOrEqual(psnr(out, expected), 60, "\(name) \(schedule.rawValue) PSNR")
                let other = schedule == .diffusers ? "compvis" : "diffusers"
                let apart = compare(out, try g.tensor("\(name).\(other)"), atol: 1e-2, rtol: 0, name: "")
                XCTAssertFalse(apart.ok, "\(name) \(schedule.rawValue) should differ from the \(other) golden")
            }
        }
    }

    func psnr(_ a: Tensor, _ b: Tensor) -> Double {
        let mse = zip(a.scalars, b.scalars).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.count)
        return mse == 0 ? .infinity : 10 * log10(1 / mse)
    }

    func testCompVisNoiseTimestepIsOneStrideAboveTheFirstStep() throws {
        XCTAssertEqual(NoiseSchedule.compvis.noiseTimestep(firstStep: 481, steps: 50, trainTimesteps: 1000), 501)
        XCTAssertEqual(NoiseSchedule.compvis.noiseTimestep(firstStep: 81, steps: 50, trainTimesteps: 1000), 101)
        XCTAssertEqual(NoiseSchedule.diffusers.noiseTimestep(firstStep: 81, steps: 50, trainTimesteps: 1000), 81)
        XCTAssertNil(NoiseSchedule.compvis.noiseTimestep(firstStep: 981, steps: 50, trainTimesteps: 1000))
        // Strength 1 has no DDIM entry above its first step: refused with the reason, never indexed past.
        let purifier = try DiffusionPurifier(pack: sd, modelSize: nil, noiseSchedule: .compvis)
        let p = PurificationParameters(strength: 1, steps: 50, guidance: 5, seed: 1)
        XCTAssertThrowsError(try purifier.validate(p)) { XCTAssert("\($0)".contains("strength < 1"), "\($0)") }
        XCTAssertNoThrow(try DiffusionPurifier(pack: sd, modelSize: nil).validate(p), "diffusers runs strength 1")
    }

    /// BLIP with the reference's prompt, the input resized by the processor (PIL, 8-bit) or as the
    /// reference does (float bilinear): token ids and stripped captions equal transformers'.
    func testPromptedCaptionsWithBothInputResizes() throws {
        struct Row: Decodable { let ids: [Int]; let caption: String }
        struct Golden: Decodable {
            let prompt: String, num_beams: Int, min_length: Int, max_length: Int, images: [String]
            let processor: [Row], bilinear: [Row]
        }
        let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("blip/reference-semantics.json"))))
        let images = try g.images.map { try ImageCodec.decode(contentsOf: Fixtures.path("blip/images/\($0)")) }
        let options = GenerationOptions(numBeams: g.num_beams, maxLength: g.max_length, minLength: g.min_length, prompt: g.prompt)
        var differ = 0
        for (resize, rows) in [(nil, g.processor), (InterpolationMode.bilinear, g.bilinear)] as [(InterpolationMode?, [Row])] {
            let captioner = try Captioner(folder: Fixtures.path("blip/model"), resize: resize)
            let captions = try captioner.caption(images, options: options)
            for (i, (c, row)) in zip(captions, rows).enumerated() {
                XCTAssertEqual(c.tokenIDs, row.ids, "\(resize?.rawValue ?? "processor") image \(i)")
                XCTAssertEqual(c.text, row.caption, "\(resize?.rawValue ?? "processor") image \(i)")
            }
        }
        for (a, b) in zip(g.processor, g.bilinear) where a.ids != b.ids { differ += 1 }
        XCTAssertGreaterThan(differ, 0, "the two resizes should give different captions on some fixture image")
    }

    func testManifestRefusesUnknownValuesOfTheNewKeys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-manifest-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = #"{"name": "t", "version": "1", "classes": ["a"], "synonyms": {}, "purification": {"strength": 0.5, "steps": 10, "guidance": 1}"#
        for (extra, expected) in [
            (#", "noise_schedule": "ldm""#, "noise_schedule"), (#", "classifier_resize": "before""#, "classifier_resize"),
            (#", "captioning": {"resize": "lanczos"}"#, "captioning.resize")
        ] {
            try Data((base + extra + "}").utf8).write(to: URL(fileURLWithPath: dir + "/pack.json"))
            XCTAssertThrowsError(try PackManifest.load(folder: dir)) { XCTAssert("\($0)".contains(expected), "\($0)") }
        }
        try Data((base + #", "noise_schedule": "compvis", "classifier_resize": "before_purification"}"#).utf8).write(
            to: URL(fileURLWithPath: dir + "/pack.json"))
        let m = try PackManifest.load(folder: dir)
        XCTAssertEqual(m.noise, .compvis)
        XCTAssertTrue(m.resizesBeforePurification)
    }

    /// classifier_resize before_purification (ImageNet's resize + centre crop first): the job works on
    /// the classifier's input from decode on, the purified image has that size, and the classifier
    /// sees it without a second resize. after_purification (the default) resizes the purified image
    /// again, so the two modes give different classifier inputs for the same job.
    func testClassifierResizeBeforePurification() throws {
        let classifierDir = Fixtures.path("classifiers/tiny-torchvision-resnet")  // resize 72 + centre crop 64
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("images/rgb.png"))))
        let input = try ImageCodec.decode(png)
        var results: [String: JobItem] = [:]
        for mode in ["before_purification", "after_purification"] {
            let dir = try SDPackLayoutTests.assemble(classifier: classifierDir) { manifest in
                manifest["classifier_resize"] = mode
                manifest["resize"] = "bilinear"
            }
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let pack = try Pack(folder: dir)
            let item = JobItem(id: mode, input: png, format: nil, parameters: pack.parameters(seed: 5), inputSHA256: SHA256.hex(png))
            _ = JobProcessor(pack: pack, options: ProcessorOptions()).run([item])
            XCTAssertNil(item.failure.map { "\($0)" })
            results[mode] = item
            let purified = try ImageCodec.decode(try XCTUnwrap(item.purifiedPNG))
            if mode == "before_purification" {
                let cropped = pack.classifier.resized(input)
                XCTAssertEqual([item.width, item.height, purified.width, purified.height], [64, 64, 64, 64])
                // The same purification run by hand on the cropped input, classified with no resize.
                let expected = try pack.purify(cropped, caption: item.caption?.text ?? "", parameters: item.parameters)
                XCTAssertEqual(expected[0].pixels, purified.pixels, "purified the classifier's crop")
                let p = pack.classifier.predictions(fromLogits: pack.classifier.logits(preprocessed: pack.classifier.preprocess(expected, resize: false)))
                XCTAssertEqual(item.prediction?.labelIndex, p[0].labelIndex)
                XCTAssertEqual(Double(item.prediction?.confidence ?? -1), Double(p[0].confidence), accuracy: 1e-5)
            } else {
                XCTAssertEqual([purified.width, purified.height], [input.width, input.height])
            }
        }
        XCTAssertNotEqual(results["before_purification"]?.purifiedSHA256, results["after_purification"]?.purifiedSHA256)
    }
}
