// BLIP captioner parity with transformers 4.49 on a tiny random BlipForConditionalGeneration
// (Tests/Fixtures/blip, written by tools/goldens/make_blip_goldens.py): processor pixel_values,
// vision last_hidden_state, decoder logits, generated ids (greedy, beam search, penalties, early
// stopping variants, prompt, defaults) for 16 images; and load errors for broken folders.
import Foundation
import ImageIO
@testable import Models
import NN
import Tensor
import TestSupport
import XCTest

final class CaptionerTests: XCTestCase {
    let folder = Fixtures.path("blip/model")

    func images() throws -> [RGBImage] {
        try (0..<16).map { try ImageCodec.decode(contentsOf: Fixtures.path(String(format: "blip/images/%02d.png", $0))) }
    }

    func golden() throws -> GoldenFile { try GoldenFile("blip/golden.safetensors") }

    func assertClose(_ actual: Tensor, _ expected: Tensor, _ name: String) {
        let c = compare(actual, expected, atol: 1e-5, rtol: 1e-4, name: name)
        recordParity(c)
        XCTAssert(c.ok, c.report)
    }

    func testPixelValuesMatchProcessor() throws {
        let captioner = try Captioner(folder: folder)
        let pixels = try captioner.processor.pixelValues(try images())
        assertClose(pixels, try golden().file.tensor("pixel_values"), "BLIP pixel_values (16 images)")
    }

    func testVisionHiddenStatesMatch() throws {
        let captioner = try Captioner(folder: folder)
        let g = try golden()
        let hidden = try captioner.imageEmbeddings(pixelValues: try g.file.tensor("pixel_values"))
        assertClose(hidden, try g.file.tensor("vision_last_hidden_state"), "BLIP vision last_hidden_state")
    }

    func testDecoderLogitsMatch() throws {
        let captioner = try Captioner(folder: folder)
        let g = try golden()
        let pixels = gatherRows(try g.file.tensor("pixel_values"), [0, 11])
        let ids = try g.file.integers("decoder_input_ids")
        let rows = stride(from: 0, to: ids.values.count, by: ids.shape[1]).map { Array(ids.values[$0..<($0 + ids.shape[1])]) }
        let logits = captioner.decoder.logits(inputIDs: rows, imageEmbeds: try captioner.imageEmbeddings(pixelValues: pixels))
        assertClose(logits, try g.file.tensor("decoder_logits"), "BLIP decoder logits")
    }

    /// Decoding step by step with the KV cache gives the full forward's logits at every position.
    func testCachedStepsMatchFullForward() throws {
        let captioner = try Captioner(folder: folder)
        let pixels = try captioner.processor.pixelValues(Array(try images().prefix(2)))
        let embeds = try captioner.imageEmbeddings(pixelValues: pixels)
        let ids = [[5000, 1037, 3861, 1997, 1037], [5000, 2000, 2001, 4999, 102]]
        let full = captioner.decoder.logits(inputIDs: ids, imageEmbeds: embeds)  // [2, 5, V]
        let memory = captioner.decoder.memory(embeds)
        var cache: DecoderCache?
        for t in 0..<5 {
            let (h, grown) = captioner.decoder.step(ids.map { $0[t] }, rows: 2, cache: cache, parents: [0, 1], memory: memory)
            cache = grown
            let expected = narrow(full, axis: 1, start: t, length: 1).reshaped([2, -1])
            assertClose(captioner.decoder.lastLogits(h), expected, "BLIP cached step \(t)")
        }
    }

    func testGenerationMatchesTransformers() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("blip/generation.json")))
        let cases = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        XCTAssertEqual(cases.count, 9)
        let captioner = try Captioner(folder: folder)
        let pixels = try captioner.processor.pixelValues(try images())
        let pad = captioner.config.textConfig.padTokenId
        for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
            let options = try generationOptions(c)
            let captions = try captioner.caption(pixelValues: pixels, options: options)
            let expected = try XCTUnwrap(c["sequences"] as? [[Int]])
            let texts = try XCTUnwrap(c["texts"] as? [String])
            XCTAssertEqual(captions.count, expected.count, name)
            var mismatches = 0
            for (i, (caption, row)) in zip(captions, expected).enumerated() {
                // transformers pads each row to the batch's longest with pad_token_id.
                let padded = caption.tokenIDs + Array(repeating: pad, count: max(0, row.count - caption.tokenIDs.count))
                if padded != row {
                    mismatches += 1
                    XCTFail("\(name) image \(i): ours \(caption.tokenIDs)\n transformers \(row)")
                    continue
                }
                XCTAssertEqual(captioner.tokenizer.decode(caption.tokenIDs), texts[i], "\(name) image \(i) text")
                if let prompt = options.prompt {
                    XCTAssert(texts[i].hasPrefix(prompt), "\(name): golden text should start with the prompt")
                    XCTAssertEqual(
                        caption.text, String(texts[i].dropFirst(prompt.count)).trimmingCharacters(in: .whitespaces),
                        "\(name) image \(i): prompt not stripped")
                } else {
                    XCTAssertEqual(caption.text, texts[i], "\(name) image \(i) text")
                }
            }
            XCTAssertEqual(mismatches, 0, "\(name): \(mismatches) of \(expected.count) sequences differ")
            if let scores = c["scores"] as? [Double] {
                let ours = Tensor(shape: [captions.count], data: captions.map { $0.score ?? .nan })
                assertClose(ours, Tensor(shape: [scores.count], data: scores.map(Float.init)), "BLIP \(name) sequences_scores")
            } else {
                XCTAssert(captions.allSatisfy { $0.score == nil }, "\(name): greedy captions carry no score")
            }
        }
    }

    /// generation.json's kwargs → options; the "defaults" case has none (the folder's defaults apply).
    func generationOptions(_ c: [String: Any]) throws -> GenerationOptions {
        let kw = try XCTUnwrap(c["kwargs"] as? [String: Any])
        var o = GenerationOptions()
        o.numBeams = kw["num_beams"] as? Int
        o.minLength = kw["min_length"] as? Int
        o.maxLength = kw["max_length"] as? Int
        o.repetitionPenalty = (kw["repetition_penalty"] as? Double).map(Float.init)
        o.lengthPenalty = kw["length_penalty"] as? Double
        switch kw["early_stopping"] {
        case let flag as Bool: o.earlyStopping = flag ? .whenEnoughHypotheses : .heuristic
        case let s as String: XCTAssertEqual(s, "never"); o.earlyStopping = .never
        default: break
        }
        o.prompt = c["prompt"] as? String
        return o
    }

    func testGenerationSettingsResolveLikeTransformers() throws {
        let text = try Captioner(folder: folder).config.textConfig
        func settings(_ explicit: BlipGenerationConfig, _ defaults: BlipGenerationConfig = .init(), prompt: Int = 1) throws -> GenerationSettings {
            try GenerationSettings(explicit: explicit, defaults: defaults, text: text, promptLength: prompt)
        }
        var none = BlipGenerationConfig()
        // A max_length that was not passed and equals the library default 20 allows 20 new tokens.
        XCTAssertEqual(try settings(none).maxLength, 21)
        XCTAssertEqual(try settings(none, prompt: 4).maxLength, 24)
        var twenty = BlipGenerationConfig(); twenty.maxLength = 20
        XCTAssertEqual(try settings(none, twenty).maxLength, 21)
        XCTAssertEqual(try settings(twenty).maxLength, 20)
        var thirty = BlipGenerationConfig(); thirty.maxLength = 30
        XCTAssertEqual(try settings(none, thirty).maxLength, 30)
        none.maxNewTokens = 10
        XCTAssertEqual(try settings(none, thirty, prompt: 4).maxLength, 14)
        let s = try settings(BlipGenerationConfig())
        XCTAssertEqual([s.numBeams, s.minLength, s.eosTokenId, s.padTokenId, s.bosTokenId], [1, 0, 102, 0, 5000])
        XCTAssertEqual(s.lengthPenalty, 1)
        XCTAssertEqual(s.earlyStopping, .heuristic)
    }

    func testCaptionFromImagesAndGenerationConfigDefaults() throws {
        // generation_config.json settings become the defaults (the pack's export writes num_beams 3 there);
        // its max_length 20 counts as transformers' default and becomes 20 + 1 ([DEC]).
        let dir = try brokenCopy { d in
            let p = d + "/generation_config.json"
            try #"{"num_beams": 3, "min_length": 5, "max_length": 20, "bos_token_id": 5000, "eos_token_id": 102, "pad_token_id": 0}"#
                .write(toFile: p, atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let captioner = try Captioner(folder: dir)
        let reference = try Captioner(folder: folder)
        let imgs = Array(try images().prefix(4))
        let fromDefaults = try captioner.caption(imgs)
        let explicit = try reference.caption(imgs, options: GenerationOptions(numBeams: 3, maxLength: 21, minLength: 5))
        XCTAssertEqual(fromDefaults, explicit)
        XCTAssert(fromDefaults.allSatisfy { $0.score != nil })
        XCTAssertEqual(try captioner.caption([]), [])
    }

    /// Replays transformers' BeamSearchScorer runs (blip/beam_scorer.json): the same candidates must give
    /// the same continuations, done flags and final sequence and score.
    func testBeamSearchScorerMatchesTransformers() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("blip/beam_scorer.json")))
        let scenarios = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(scenarios.count, 100)
        for (k, sc) in scenarios.enumerated() {
            let beams = try XCTUnwrap(sc["num_beams"] as? Int), prompt = try XCTUnwrap(sc["prompt_length"] as? Int)
            let early: EarlyStopping
            switch sc["early_stopping"] {
            case let flag as Bool: early = flag ? .whenEnoughHypotheses : .heuristic
            default: early = .never
            }
            var scorer = BeamSearchScorer(
                numBeams: beams, lengthPenalty: try XCTUnwrap(sc["length_penalty"] as? Double),
                earlyStopping: early, maxLength: try XCTUnwrap(sc["max_length"] as? Int),
                eosTokenId: try XCTUnwrap(sc["eos"] as? Int), promptLength: prompt)
            var sequences = Array(repeating: Array(repeating: 5, count: prompt), count: beams)
            var scores: [Float] = []
            for (t, step) in try XCTUnwrap(sc["steps"] as? [[String: Any]]).enumerated() {
                let floats = { (key: String) throws -> [Float] in try XCTUnwrap(step[key] as? [Double]).map(Float.init) }
                let ints = { (key: String) throws -> [Int] in try XCTUnwrap(step[key] as? [Int]) }
                let candidates = zip(zip(try floats("scores"), try ints("tokens")), try ints("beams"))
                    .map { BeamCandidate(score: $0.0, token: $0.1, beam: $1) }
                let next = scorer.process(candidates, sequences: sequences)
                let expected = zip(zip(try floats("next_scores"), try ints("next_tokens")), try ints("next_beams"))
                    .map { BeamCandidate(score: $0.0, token: $0.1, beam: $1) }
                XCTAssertEqual(next, expected, "scenario \(k) step \(t): continuations")
                XCTAssertEqual(scorer.isDone, step["done"] as? Bool, "scenario \(k) step \(t): done")
                sequences = next.map { sequences[$0.beam] + [$0.token] }
                scores = next.map(\.score)
                if scorer.isDone { break }
            }
            let result = scorer.finalize(beams: Array(zip(sequences, scores)).map { (ids: $0, score: $1) })
            XCTAssertEqual(result.ids, sc["sequence"] as? [Int], "scenario \(k): final sequence")
            let expectedScore = Float(try XCTUnwrap(sc["score"] as? Double))
            XCTAssertEqual(result.score ?? .nan, expectedScore, accuracy: 1e-6 * max(1, abs(expectedScore)), "scenario \(k): score")
        }
    }

    /// Ties, which random scores never produce: Python's sorted(...).pop() takes the last of equal
    /// best scores; a full list drops its lowest score, the earliest among equals.
    func testBeamHypothesesTieRules() {
        var h = BeamHypotheses(numBeams: 2, lengthPenalty: 1, earlyStopping: .heuristic, maxLength: 10)
        h.add([1], sumLogprobs: -2, generatedLength: 2)
        h.add([2], sumLogprobs: -2, generatedLength: 2)
        XCTAssertEqual(h.best.ids, [2])
        h.add([3], sumLogprobs: -2, generatedLength: 2)  // not better than the worst: ignored
        XCTAssertEqual(h.beams.map(\.ids), [[1], [2]])
        h.add([4], sumLogprobs: -1, generatedLength: 2)  // replaces [1], the first of the equal worst
        XCTAssertEqual(h.beams.map(\.ids), [[2], [4]])
        XCTAssertEqual(h.worstScore, -1)
        XCTAssertEqual(h.best.ids, [4])
    }

    // MARK: Broken folders

    /// Copies the fixture folder so a test can break it.
    func brokenCopy(edit: (String) throws -> Void) throws -> String {
        let dst = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-blip-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: folder, toPath: dst)
        try edit(dst)
        return dst
    }

    func rewriteWeights(_ dir: String, _ change: (inout [String: Tensor]) -> Void) throws {
        let f = try SafeTensorsFile(path: dir + "/model.safetensors")
        var all: [String: Tensor] = [:]
        for n in f.names { all[n] = try f.tensor(n) }
        change(&all)
        try SafeTensorsWriter.write(all, to: dir + "/model.safetensors")
    }

    func assertLoadFails(_ dir: String, mentioning text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Captioner(folder: dir), file: file, line: line) {
            XCTAssert("\($0)".contains(text), "\($0) should mention \(text)", file: file, line: line)
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testBrokenFoldersNameTheProblem() throws {
        let remove = { (name: String) in try self.brokenCopy { try FileManager.default.removeItem(atPath: $0 + "/" + name) } }
        assertLoadFails(try remove("model.safetensors"), mentioning: "no model.safetensors")
        assertLoadFails(try remove("vocab.txt"), mentioning: "vocab.txt: file not found")
        assertLoadFails(try remove("config.json"), mentioning: "config.json: file not found")
        assertLoadFails(try remove("preprocessor_config.json"), mentioning: "preprocessor_config.json: file not found")

        let key = "text_decoder.bert.encoder.layer.1.crossattention.self.key.weight"
        assertLoadFails(try brokenCopy { d in try self.rewriteWeights(d) { $0[key] = nil } }, mentioning: "missing weight '\(key)'")
        assertLoadFails(
            try brokenCopy { d in try self.rewriteWeights(d) { $0["vision_model.encoder.layers.0.self_attn.qkv.weight"] = Tensor(zeros: [96, 31]) } },
            mentioning: "'vision_model.encoder.layers.0.self_attn.qkv.weight' has shape [96, 31], expected [96, 32]")
        assertLoadFails(
            try brokenCopy { d in try self.rewriteWeights(d) { $0["text_decoder.extra.weight"] = Tensor(zeros: [2]) } },
            mentioning: "text_decoder.extra.weight")
        assertLoadFails(
            try brokenCopy { d in
                let p = d + "/config.json"
                let s = try String(contentsOfFile: p, encoding: .utf8).replacingOccurrences(
                    of: "\"num_attention_heads\": 2", with: "\"num_attention_heads\": 3")
                try s.write(toFile: p, atomically: true, encoding: .utf8)
            }, mentioning: "does not split into 3 heads")
        assertLoadFails(
            try brokenCopy { d in
                try #"{"do_sample": true}"#.write(toFile: d + "/generation_config.json", atomically: true, encoding: .utf8)
            }, mentioning: "do_sample is not supported")
    }

    func testTiedDecoderWeightFallsBackToWordEmbeddings() throws {
        // Without cls.predictions.decoder.weight the LM head reads the word embeddings (tied weights).
        let dir = try brokenCopy { d in
            try self.rewriteWeights(d) { w in
                w["text_decoder.cls.predictions.decoder.weight"] = nil
            }
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tied = try Captioner(folder: dir)
        XCTAssertEqual(tied.decoder.head.decoder.weight.scalars, tied.decoder.embeddings.wordEmbeddings.weight.scalars)
    }

    func testBadInputIsRefused() throws {
        let captioner = try Captioner(folder: folder)
        XCTAssertThrowsError(try captioner.caption(pixelValues: Tensor(zeros: [1, 3, 96, 96]))) { XCTAssert("\($0)".contains("do not fit"), "\($0)") }
        XCTAssertThrowsError(try captioner.caption(Array(try images().prefix(1)), options: GenerationOptions(maxLength: 4, prompt: "a picture of"))) {
            XCTAssert("\($0)".contains("leaves no room"), "\($0)")
        }
    }
}
