// Port of transformers' slow BertTokenizer (models/bert/tokenization_bert.py) with the added-token
// handling of PreTrainedTokenizer (tokenization_utils.py), as BLIP's captioner uses it:
//   encode: lower-case everything but special tokens → split out added tokens ([CLS], [SEP], BLIP's
//           [DEC] and [ENC], ...) → BasicTokenizer → greedy longest-match-first WordPiece ("##"
//           continuations, words over 100 code points → [UNK]) → ids, optionally [CLS] … [SEP];
//   decode: ids → tokens (special ones skipped on request) → " ".join with " ##" removed → the
//           clean_up_tokenization of tokenization_utils_base.py.
// Python compares strings by code point, so vocabulary keys are Unicode scalar arrays, never Swift
// Strings (whose == treats canonically equivalent spellings as equal).
import Foundation

public struct WordPieceTokenizer: Sendable {
    /// A token outside the WordPiece algorithm (transformers' AddedToken).
    public struct AddedToken: Sendable, Equatable {
        public var content: String
        public var id: Int
        public var special: Bool
        public var lstrip = false
        public var rstrip = false
        public var singleWord = false
        public var normalized = false
    }

    typealias Piece = [Unicode.Scalar]

    let vocab: [Piece: Int]
    let idToToken: [Int: String]
    /// Added tokens by id and by content (the trie's entries).
    let addedByID: [Int: AddedToken]
    let addedByContent: [Piece: AddedToken]
    /// Added tokens longest first, for matching in text.
    let addedMatchOrder: [Piece]
    /// all_special_tokens, in transformers' order (bos, eos, unk, sep, pad, cls, mask, additional).
    public let specialTokens: [String]
    let specialIDs: Set<Int>
    /// Kept from lower-casing: special tokens, then non-special normalized added tokens.
    let protectedFromLowercase: [Piece]
    let basic: BasicTokenizer
    let doBasicTokenize: Bool
    let lowerCase: Bool
    /// never_split from the config: such basic tokens skip WordPiece.
    let configNeverSplit: Set<String>
    let cleanUpTokenizationSpaces: Bool
    public let unkToken: String
    public let clsToken: String?
    public let sepToken: String?
    public let padToken: String?
    public let bosToken: String?
    let additionalSpecialTokens: [String]
    public let maxInputCharsPerWord = 100
    /// Number of vocab.txt entries (transformers' vocab_size).
    public let vocabularySize: Int
    /// len(tokenizer): distinct tokens of the vocabulary and the added tokens.
    public let count: Int

    // MARK: Encoding

    /// Tokens of `text` (transformers' tokenize()).
    public func tokenize(_ text: String) -> [String] {
        let lowered = lowerCase ? lowercasedOutsideSpecialTokens(Array(text.unicodeScalars)) : Array(text.unicodeScalars)
        var out: [String] = []
        for piece in splitOnAddedTokens(lowered) {
            if let token = addedByContent[piece] {
                out.append(token.content)
            } else {
                out += wordTokens(String(String.UnicodeScalarView(piece)))
            }
        }
        return out
    }

    /// Ids of `text`; with special tokens: [CLS] … [SEP] (BertTokenizer.build_inputs_with_special_tokens).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        let ids = tokenize(text).map { id(of: $0) ?? unkID }
        guard addSpecialTokens else { return ids }
        return [clsToken.flatMap(id(of:)) ?? unkID] + ids + [sepToken.flatMap(id(of:)) ?? unkID]
    }

    /// The id of a token: added tokens first, then the vocabulary.
    public func id(of token: String) -> Int? {
        let piece = Array(token.unicodeScalars)
        return addedByContent[piece]?.id ?? vocab[piece]
    }

    /// The token of an id, as convert_ids_to_tokens: unknown ids read as the unk token.
    public func token(of id: Int) -> String {
        addedByID[id]?.content ?? idToToken[id] ?? unkToken
    }

    var unkID: Int { id(of: unkToken) ?? 0 }

    /// PreTrainedTokenizer.tokenize's first step: lower-case code point by code point (Python's
    /// re.sub with "(special…)|(.+?)"), leaving special tokens and newlines ('.' does not match "\n").
    func lowercasedOutsideSpecialTokens(_ text: Piece) -> Piece {
        var out: Piece = []
        out.reserveCapacity(text.count)
        var i = 0
        scan: while i < text.count {
            for token in protectedFromLowercase where text.hasPiece(token, at: i) {
                out += token
                i += token.count
                continue scan
            }
            if text[i] == "\n" { out.append(text[i]) } else { out += text[i].properties.lowercaseMapping.unicodeScalars }
            i += 1
        }
        return out
    }

    /// Trie.split: cut the text around added tokens. Matches are taken leftmost first and longest at a
    /// position (transformers' trie does the same for any set where no token contains another).
    /// Then AddedToken's lstrip/rstrip/single_word adjust the neighbouring pieces.
    func splitOnAddedTokens(_ text: Piece) -> [Piece] {
        var pieces: [Piece] = []
        var start = 0, i = 0
        while i < text.count {
            if let match = addedMatchOrder.first(where: { text.hasPiece($0, at: i) }) {
                if start < i { pieces.append(Array(text[start..<i])) }
                pieces.append(match)
                i += match.count
                start = i
            } else {
                i += 1
            }
        }
        if start < text.count { pieces.append(Array(text[start...])) }

        for (k, piece) in pieces.enumerated() {
            guard let token = addedByContent[piece] else { continue }
            if token.rstrip, k + 1 < pieces.count, !pieces[k + 1].isEmpty { pieces[k + 1] = pieces[k + 1].pythonLstripped }
            if token.lstrip, k > 0, !pieces[k - 1].isEmpty { pieces[k - 1] = pieces[k - 1].pythonRstripped }
            if token.singleWord, k > 0, let last = pieces[k - 1].last, last != " " {
                pieces[k - 1] += piece
                pieces[k] = []
            } else if token.singleWord, k + 1 < pieces.count, let first = pieces[k + 1].first, first != " " {
                pieces[k + 1] = piece + pieces[k + 1]
                pieces[k] = []
            }
        }
        return pieces.filter { !$0.isEmpty }
    }

    /// BertTokenizer._tokenize on text without added tokens.
    func wordTokens(_ text: String) -> [String] {
        guard doBasicTokenize else { return wordPiece(text) }
        return basic.tokenize(text).flatMap { configNeverSplit.contains($0) ? [$0] : wordPiece($0) }
    }

    /// WordpieceTokenizer.tokenize: greedy longest-match-first over each whitespace-separated word.
    func wordPiece(_ text: String) -> [String] {
        var out: [String] = []
        for chars in Array(text.unicodeScalars).split(whereSeparator: Piece.isPythonSpace).map(Array.init) {
            if chars.count > maxInputCharsPerWord { out.append(unkToken); continue }
            var pieces: [String] = []
            var start = 0
            while start < chars.count {
                var end = chars.count
                var found: Piece?
                while start < end {
                    let candidate = (start > 0 ? Array("##".unicodeScalars) : []) + chars[start..<end]
                    if vocab[candidate] != nil { found = candidate; break }
                    end -= 1
                }
                guard let found else { pieces = [unkToken]; break }
                pieces.append(String(String.UnicodeScalarView(found)))
                start = end
            }
            out += pieces
        }
        return out
    }

    // MARK: Decoding

    /// transformers' decode(ids, skip_special_tokens:) with clean_up_tokenization_spaces from the config.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        let special = Set(specialTokens)
        // Added tokens outside the vocabulary's flow ("legacy added tokens") stand as their own words.
        let legacy = Set(addedByContent.values.map(\.content).filter { !special.contains($0) })
            .union(additionalSpecialTokens.filter { (id(of: $0) ?? unkID) >= vocabularySize })
        var subTexts: [String] = []
        var current: [String] = []
        for id in ids {
            if skipSpecialTokens && specialIDs.contains(id) { continue }
            let token = token(of: id)
            if skipSpecialTokens && special.contains(token) { continue }
            if legacy.contains(token) {
                if !current.isEmpty {
                    let s = tokensToString(current)
                    if !s.isEmpty { subTexts.append(s) }
                    current = []
                }
                subTexts.append(token)
            } else {
                current.append(token)
            }
        }
        if !current.isEmpty { subTexts.append(tokensToString(current)) }
        let text = subTexts.joined(separator: " ")
        return cleanUpTokenizationSpaces ? Self.cleanUpTokenization(text) : text
    }

    /// BertTokenizer.convert_tokens_to_string: " ".join(tokens).replace(" ##", "").strip()
    func tokensToString(_ tokens: [String]) -> String {
        let joined = Array(tokens.joined(separator: " ").unicodeScalars)
        return String(String.UnicodeScalarView(joined.replacing(" ##", with: "").pythonStripped))
    }

    /// PreTrainedTokenizerBase.clean_up_tokenization: the same replacements in the same order.
    public static func cleanUpTokenization(_ text: String) -> String {
        var s = Array(text.unicodeScalars)
        for (from, to) in [
            (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")
        ] {
            s = s.replacing(from, with: to)
        }
        return String(String.UnicodeScalarView(s))
    }
}

extension Array where Element == Unicode.Scalar {
    func hasPiece(_ piece: [Unicode.Scalar], at i: Int) -> Bool {
        guard !piece.isEmpty, i + piece.count <= count else { return false }
        for k in 0..<piece.count where self[i + k] != piece[k] { return false }
        return true
    }

    /// Python str.replace on code points.
    func replacing(_ from: String, with to: String) -> [Unicode.Scalar] {
        let f = Array(from.unicodeScalars), t = Array(to.unicodeScalars)
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(count)
        var i = 0
        while i < count {
            if hasPiece(f, at: i) { out += t; i += f.count } else { out.append(self[i]); i += 1 }
        }
        return out
    }

    /// Python's str.isspace: White_Space plus the separators U+001C…U+001F.
    static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        s.properties.isWhitespace || (0x1C...0x1F).contains(s.value)
    }

    var pythonLstripped: [Unicode.Scalar] { Array(drop(while: Self.isPythonSpace)) }
    var pythonRstripped: [Unicode.Scalar] { Array(reversed().drop(while: Self.isPythonSpace).reversed()) }
    var pythonStripped: [Unicode.Scalar] { pythonLstripped.pythonRstripped }
}

// MARK: Loading

extension WordPieceTokenizer {
    /// Special token attributes in SPECIAL_TOKENS_ATTRIBUTES order.
    struct SpecialTokenAttributes {
        var named: [String: String] = [
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
            "cls_token": "[CLS]", "mask_token": "[MASK]"
        ]  // BertTokenizer's defaults
        var additional: [String] = []
        static let order = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

        /// Reads the attributes a JSON object sets (strings or {"content": …}); null clears one.
        mutating func update(from json: [String: Any], mergeAdditional: Bool) {
            for key in Self.order where json.keys.contains(key) { named[key] = WordPieceTokenizer.content(json[key]) }
            if let list = json["additional_special_tokens"] as? [Any] {
                let tokens = list.compactMap { WordPieceTokenizer.content($0) }
                additional = mergeAdditional ? additional + tokens.filter { !additional.contains($0) } : tokens
            }
        }

        /// all_special_tokens: the named ones, then the additional ones, without repeats.
        var all: [String] {
            var out: [String] = []
            for t in Self.order.compactMap({ named[$0] }) + additional where !out.contains(t) { out.append(t) }
            return out
        }
    }

    static func content(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        return (value as? [String: Any])?["content"] as? String
    }

    /// Loads a BertTokenizer folder: vocab.txt plus, when present, tokenizer_config.json
    /// (options, special tokens, added_tokens_decoder) or the legacy special_tokens_map.json and
    /// added_tokens.json, resolved as PreTrainedTokenizerBase.from_pretrained does.
    public init(folder: String) throws {
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let vocabulary = try Self.readVocabulary(path("vocab.txt"))
        let configPath = path("tokenizer_config.json")
        let config = try Self.readJSON(configPath) ?? [:]
        if let cls = config["tokenizer_class"] as? String, !["BertTokenizer", "BertTokenizerFast"].contains(cls) {
            throw ModelError.badConfig(configPath, "tokenizer_class \(cls) is not a BERT WordPiece tokenizer")
        }
        var specials = SpecialTokenAttributes()
        specials.update(from: config, mergeAdditional: false)
        var added: [AddedToken] = []
        if let decoder = config["added_tokens_decoder"] as? [String: Any] {
            for (key, value) in decoder {
                guard let id = Int(key), let entry = value as? [String: Any], let content = entry["content"] as? String else {
                    throw ModelError.badConfig(configPath, "added_tokens_decoder entry '\(key)' is not {\"content\": …}")
                }
                let special = entry["special"] as? Bool ?? false
                added.append(
                    AddedToken(
                        content: content, id: id, special: special,
                        lstrip: entry["lstrip"] as? Bool ?? false, rstrip: entry["rstrip"] as? Bool ?? false,
                        singleWord: entry["single_word"] as? Bool ?? false,
                        normalized: entry["normalized"] as? Bool ?? !special))
            }
        } else {
            // Legacy folders: special_tokens_map.json updates the attributes, added_tokens.json lists ids.
            if let map = try Self.readJSON(path("special_tokens_map.json")) { specials.update(from: map, mergeAdditional: true) }
            let addedPath = path("added_tokens.json")
            if let table = try Self.readJSON(addedPath) {
                let all = Set(specials.all)
                for (content, value) in table {
                    guard let id = value as? Int else { throw ModelError.badConfig(addedPath, "id of '\(content)' is not an integer") }
                    added.append(AddedToken(content: content, id: id, special: all.contains(content), normalized: !all.contains(content)))
                }
            }
        }
        try self.init(
            vocabulary: vocabulary, specials: specials, added: added.sorted { $0.id < $1.id }, config: config,
            configPath: configPath)
    }

    init(
        vocabulary: [String], specials: SpecialTokenAttributes, added initialAdded: [AddedToken], config: [String: Any],
        configPath: String
    ) throws {
        var vocab: [Piece: Int] = [:]
        for (i, token) in vocabulary.enumerated() { vocab[Array(token.unicodeScalars)] = i }  // later duplicates win, as in Python
        var added = initialAdded
        // PreTrainedTokenizer.__init__: special tokens that are not added tokens yet become added tokens,
        // with their vocabulary id or the next free one.
        var known = Set(vocab.keys).union(added.map { Array($0.content.unicodeScalars) })
        for token in specials.all where !token.isEmpty {
            let piece = Array(token.unicodeScalars)
            if added.contains(where: { Array($0.content.unicodeScalars) == piece }) { continue }
            let id = vocab[piece] ?? known.count
            known.insert(piece)
            added.append(AddedToken(content: token, id: id, special: true))
        }
        self.vocab = vocab
        idToToken = Dictionary(uniqueKeysWithValues: vocab.map { ($0.value, String(String.UnicodeScalarView($0.key))) })
        addedByID = Dictionary(added.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        addedByContent = Dictionary(added.map { (Array($0.content.unicodeScalars), $0) }, uniquingKeysWith: { _, last in last })
        addedMatchOrder = addedByContent.keys.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
        specialTokens = specials.all
        additionalSpecialTokens = specials.additional
        protectedFromLowercase = (specials.all + added.filter { !$0.special && $0.normalized }.map(\.content))
            .map { Array($0.unicodeScalars) }.filter { !$0.isEmpty }
        vocabularySize = vocab.count
        count = known.count

        lowerCase = config["do_lower_case"] as? Bool ?? true
        doBasicTokenize = config["do_basic_tokenize"] as? Bool ?? true
        configNeverSplit = Set(config["never_split"] as? [String] ?? [])
        cleanUpTokenizationSpaces = config["clean_up_tokenization_spaces"] as? Bool ?? true
        basic = BasicTokenizer(
            lowerCase: lowerCase, stripAccents: config["strip_accents"] as? Bool,
            tokenizeChineseChars: config["tokenize_chinese_chars"] as? Bool ?? true,
            neverSplit: configNeverSplit.union(specials.all))
        guard let unk = specials.named["unk_token"] else { throw ModelError.badConfig(configPath, "no unk_token") }
        unkToken = unk
        clsToken = specials.named["cls_token"]
        sepToken = specials.named["sep_token"]
        padToken = specials.named["pad_token"]
        bosToken = specials.named["bos_token"]
        guard addedByContent[Array(unk.unicodeScalars)] != nil || vocab[Array(unk.unicodeScalars)] != nil else {
            throw ModelError.badConfig(configPath, "unk_token '\(unk)' is neither in vocab.txt nor an added token")
        }
        let byContent = addedByContent
        func idOf(_ token: String) -> Int? { byContent[Array(token.unicodeScalars)]?.id ?? vocab[Array(token.unicodeScalars)] }
        let unkID = idOf(unk) ?? 0
        specialIDs = Set(specials.all.map { idOf($0) ?? unkID })
    }

    /// vocab.txt: one token per line (Python's universal newlines: \n, \r\n or \r end a line).
    static func readVocabulary(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        guard let text = String(data: data, encoding: .utf8) else { throw ModelError.badConfig(path, "not UTF-8 text") }
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        var afterCR = false
        for s in text.unicodeScalars {
            if s == "\n" && afterCR { afterCR = false; continue }
            afterCR = s == "\r"
            if s == "\n" || s == "\r" { lines.append(String(current)); current = String.UnicodeScalarView() } else { current.append(s) }
        }
        if !current.isEmpty { lines.append(String(current)) }
        guard !lines.isEmpty else { throw ModelError.badConfig(path, "empty vocabulary") }
        return lines
    }

    /// A JSON object file, or nil when the file does not exist.
    static func readJSON(_ path: String) throws -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.badConfig(path, "not a JSON object")
        }
        return object
    }
}
