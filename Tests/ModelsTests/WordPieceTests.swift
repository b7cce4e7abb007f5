// WordPiece parity with transformers' slow BertTokenizer with BLIP's added [DEC]/[ENC]
// (Tests/Fixtures/blip/wordpiece.json, written by tools/goldens/make_blip_goldens.py): ids for every
// golden string with and without [CLS]/[SEP], and decode() with and without special tokens.
//   fixture: the BLIP fixture folder's tokenizer (first 5,000 BERT lines; tokenizer_config.json layout)
//   full:    ../shared bert-base-uncased vocab.txt with the legacy special_tokens_map.json +
//            added_tokens.json layout (Tests/Fixtures/blip/tokenizer-legacy)
import Foundation
@testable import Models
import TestSupport
import XCTest

final class WordPieceTests: XCTestCase {
    struct Golden {
        let strings: [String]
        let cases: [String: Any]
    }

    func golden() throws -> Golden {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("blip/wordpiece.json")))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return Golden(strings: try XCTUnwrap(json["strings"] as? [String]), cases: json)
    }

    /// Checks one tokenizer against its golden section (all strings, all id lists).
    func check(_ tok: WordPieceTokenizer, _ section: [String: Any], strings: [String], name: String) throws {
        XCTAssertEqual(tok.vocabularySize, section["vocab_size"] as? Int, "\(name): vocab_size")
        XCTAssertEqual(tok.count, section["len"] as? Int, "\(name): len(tokenizer)")
        let encode = try XCTUnwrap(section["encode"] as? [[Int]])
        let plain = try XCTUnwrap(section["encode_plain"] as? [[Int]])
        XCTAssertEqual(encode.count, strings.count)
        var failures = 0
        for (i, s) in strings.enumerated() {
            let ours = tok.encode(s), ourPlain = tok.encode(s, addSpecialTokens: false)
            if ours != encode[i] || ourPlain != plain[i] {
                failures += 1
                if failures <= 5 {
                    XCTFail("\(name): \(s.debugDescription) → \(ourPlain), transformers \(plain[i]); tokens \(tok.tokenize(s))")
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(name): \(failures) of \(strings.count) strings encode differently")

        let idLists = try XCTUnwrap(section["decode_ids"] as? [[Int]])
        let decoded = try XCTUnwrap(section["decode"] as? [String])
        let decodedKeep = try XCTUnwrap(section["decode_keep_special"] as? [String])
        var decodeFailures = 0
        for (i, ids) in idLists.enumerated() {
            let ours = tok.decode(ids), oursKeep = tok.decode(ids, skipSpecialTokens: false)
            if ours != decoded[i] || oursKeep != decodedKeep[i] {
                decodeFailures += 1
                if decodeFailures <= 5 {
                    XCTFail(
                        "\(name): decode \(ids) → \(ours.debugDescription) / \(oursKeep.debugDescription), transformers \(decoded[i].debugDescription) / \(decodedKeep[i].debugDescription)"
                    )
                }
            }
        }
        XCTAssertEqual(decodeFailures, 0, "\(name): \(decodeFailures) of \(idLists.count) id lists decode differently")
        XCTAssertGreaterThanOrEqual(strings.count, 300)
    }

    func testFixtureTokenizerMatchesTransformers() throws {
        let g = try golden()
        let tok = try WordPieceTokenizer(folder: Fixtures.path("blip/model"))
        XCTAssertEqual(tok.id(of: "[DEC]"), 5000)
        XCTAssertEqual(tok.bosToken, "[DEC]")
        try check(tok, try XCTUnwrap(g.cases["fixture"] as? [String: Any]), strings: g.strings, name: "fixture")
    }

    func testFullBertVocabularyMatchesTransformers() throws {
        let vocab = Fixtures.shared + "/data/tokenizers/bert-base-uncased/vocab.txt"
        guard FileManager.default.fileExists(atPath: vocab) else { throw XCTSkip("needs ../shared bert-base-uncased vocab.txt") }
        let g = try golden()
        let section = try XCTUnwrap(g.cases["full"] as? [String: Any], "wordpiece.json was written without ../shared")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-wordpiece-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: Fixtures.path("blip/tokenizer-legacy"), toPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: vocab, toPath: dir + "/vocab.txt")
        let tok = try WordPieceTokenizer(folder: dir)
        XCTAssertEqual(tok.id(of: "[DEC]"), 30522)
        XCTAssertEqual(tok.id(of: "[ENC]"), 30523)
        try check(tok, section, strings: g.strings, name: "full")
    }

    func testCleanUpTokenization() {
        XCTAssertEqual(
            WordPieceTokenizer.cleanUpTokenization("a dog , a cat . is n't it ' s ok ?"),
            "a dog, a cat. isn't it's ok?")
    }

    func testMissingVocabularyNamesTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lgap-novocab-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try WordPieceTokenizer(folder: dir)) { XCTAssert("\($0)".contains("vocab.txt: file not found"), "\($0)") }
    }
}
