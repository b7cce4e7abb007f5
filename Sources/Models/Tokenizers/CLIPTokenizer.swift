// Port of transformers' CLIPTokenizer (models/clip/tokenization_clip.py), the slow tokenizer that
// diffusers' Stable Diffusion pipelines load. Without ftfy installed (as in our reference
// environment), transformers cleans text with BasicTokenizer(strip_accents=False,
// do_split_on_punc=False), so this does the same; then CLIP's regex pre-tokenisation, byte-level
// mapping, BPE merges by rank, and <|startoftext|> … <|endoftext|> with truncation and padding.
import Foundation

public final class CLIPTokenizer: @unchecked Sendable {
    public let encoder: [String: Int]
    let decoder: [Int: String]
    let ranks: [String: Int]  // "a b" → merge rank
    let byteEncoder: [UInt8: Unicode.Scalar]
    public let bosID: Int
    public let eosID: Int
    public let padID: Int
    public let unkID: Int
    public let maxLength: Int
    private var cache: [String: [String]] = [:]
    private let lock = NSLock()
    private let basic = BasicTokenizer(lowerCase: true, stripAccents: false, splitOnPunctuation: false)

    static let specialTokens = ["<|startoftext|>", "<|endoftext|>"]

    /// A Hugging Face CLIPTokenizer folder: vocab.json, merges.txt, optional special_tokens_map.json
    /// and tokenizer_config.json (pad token, model_max_length).
    public convenience init(folder: String) throws {
        let fm = FileManager.default
        let vocabPath = folder + "/vocab.json", mergesPath = folder + "/merges.txt"
        guard let vocabData = fm.contents(atPath: vocabPath) else { throw ModelError.missingFile(vocabPath) }
        guard let mergesData = fm.contents(atPath: mergesPath) else { throw ModelError.missingFile(mergesPath) }
        guard let vocab = try? JSONDecoder().decode([String: Int].self, from: vocabData) else {
            throw ModelError.badConfig(vocabPath, "not a JSON object of token → id")
        }
        let lines = String(decoding: mergesData, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        // transformers reads merges[1 : 49152 - 256 - 2 + 1]: skip the "#version" header, at most 48,894 merges.
        let merges = lines.dropFirst().prefix(49152 - 256 - 2).filter { !$0.isEmpty }.map(String.init)
        var config: [String: Any] = [:]
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            if let d = fm.contents(atPath: folder + "/" + name), let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any] {
                config.merge(obj) { _, new in new }
            }
        }
        func tokenName(_ key: String) -> String? {
            if let s = config[key] as? String { return s }
            if let d = config[key] as? [String: Any] { return d["content"] as? String }
            return nil
        }
        let pad = tokenName("pad_token") ?? "<|endoftext|>"
        let maxLen = (config["model_max_length"] as? Int).map { $0 > 100_000 ? 77 : $0 } ?? 77
        try self.init(vocab: vocab, merges: merges, padToken: pad, maxLength: maxLen, source: folder)
    }

    /// OpenAI's gzipped BPE file (bpe_simple_vocab_16e6.txt.gz), converted as CLIP's SimpleTokenizer does.
    public convenience init(gzippedMerges path: String, maxLength: Int = 77) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["gzip", "-dc", path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ModelError.missingFile(path) }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let merges = lines.dropFirst().prefix(49152 - 256 - 2).map(String.init)
        let chars = CLIPTokenizer.byteTable().sorted { $0.key < $1.key }
        var order = CLIPTokenizer.byteOrder().map { String(chars[Int($0)].value) }
        order += order.map { $0 + "</w>" }
        order += merges.map { $0.replacingOccurrences(of: " ", with: "") }
        order += CLIPTokenizer.specialTokens
        var vocab: [String: Int] = [:]
        for (i, t) in order.enumerated() { vocab[t] = i }
        try self.init(vocab: vocab, merges: merges, padToken: "<|endoftext|>", maxLength: maxLength, source: path)
    }

    init(vocab: [String: Int], merges: [String], padToken: String, maxLength: Int, source: String) throws {
        encoder = vocab
        decoder = Dictionary(vocab.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var r: [String: Int] = [:]
        for (i, m) in merges.enumerated() where r[m] == nil { r[m] = i }
        ranks = r
        byteEncoder = CLIPTokenizer.byteTable()
        guard let bos = vocab["<|startoftext|>"], let eos = vocab["<|endoftext|>"] else {
            throw ModelError.badConfig(source, "vocabulary lacks <|startoftext|> or <|endoftext|>")
        }
        bosID = bos
        eosID = eos
        unkID = eos
        padID = vocab[padToken] ?? eos
        self.maxLength = maxLength
    }

    /// GPT-2/CLIP's reversible byte → printable-character table.
    static func byteTable() -> [UInt8: Unicode.Scalar] {
        var table: [UInt8: Unicode.Scalar] = [:]
        var n: UInt32 = 0
        for b in 0...255 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[UInt8(b)] = Unicode.Scalar(UInt32(b))!
            } else {
                table[UInt8(b)] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return table
    }

    /// The order of byte characters in CLIP's base vocabulary: printable ranges first, then the rest.
    static func byteOrder() -> [UInt8] {
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        let rest = (0...255).filter { !printable.contains($0) }
        return (printable + rest).map { UInt8($0) }
    }

    // MARK: Encoding

    /// Token ids of `text` without start/end tokens. Special tokens written in the text are split out
    /// first and kept whole, as transformers' added-token trie does.
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            let hits = Self.specialTokens.compactMap { t in rest.range(of: t).map { (t, $0) } }
            guard let (special, range) = hits.min(by: { $0.1.lowerBound < $1.1.lowerBound }) else {
                ids += encodeOrdinary(String(rest))
                break
            }
            ids += encodeOrdinary(String(rest[..<range.lowerBound]))
            ids.append(encoder[special]!)
            rest = rest[range.upperBound...]
        }
        return ids
    }

    private func encodeOrdinary(_ text: String) -> [Int] {
        let cleaned = basic.tokenize(text).joined(separator: " ")
        var ids: [Int] = []
        for piece in Self.preTokenize(cleaned) {
            var mapped = String.UnicodeScalarView()
            for b in piece.utf8 { mapped.append(byteEncoder[b]!) }
            for token in bpe(String(mapped)) { ids.append(encoder[token] ?? unkID) }
        }
        return ids
    }

    /// [bos] + ids + [eos]; with `truncate` the ids are cut so the whole fits maxLength, with `pad`
    /// the pad token fills it up to maxLength (tokenizer(text, padding="max_length", truncation=True)).
    public func callAsFunction(_ text: String, pad: Bool = true, truncate: Bool = true) -> [Int] {
        let body = encode(text)
        var ids = [bosID] + (truncate ? Array(body.prefix(maxLength - 2)) : body) + [eosID]
        if pad && ids.count < maxLength { ids += Array(repeating: padID, count: maxLength - ids.count) }
        return ids
    }

    /// Text of ids (byte-level decoding; "</w>" becomes a space), skipping the special tokens.
    public func decode(_ ids: [Int]) -> String {
        let reverse = Dictionary(byteEncoder.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var bytes: [UInt8] = []
        for id in ids where id != bosID && id != eosID && id != padID {
            guard let t = decoder[id] else { continue }
            for s in t.unicodeScalars { if let b = reverse[s] { bytes.append(b) } }
            if t.hasSuffix("</w>") { bytes.append(0x20) }
        }
        return String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "</w>", with: " ").trimmingCharacters(in: .whitespaces)
    }

    /// CLIP's pattern: <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
    /// (case-insensitive), tried in that order at each position, as Python's regex does.
    static func preTokenize(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        func isLetter(_ u: Unicode.Scalar) -> Bool {
            switch u.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
            default: return false
            }
        }
        func isNumber(_ u: Unicode.Scalar) -> Bool {
            switch u.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: return true
            default: return false
            }
        }
        func matches(_ literal: String, at i: Int) -> Bool {
            let l = Array(literal.unicodeScalars)
            guard i + l.count <= s.count else { return false }
            for j in 0..<l.count where String(s[i + j]).lowercased() != String(l[j]) { return false }
            return true
        }
        var out: [String] = []
        var i = 0
        let literals = specialTokens + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
        while i < s.count {
            if let lit = literals.first(where: { matches($0, at: i) }) {
                let n = lit.unicodeScalars.count
                out.append(String(String.UnicodeScalarView(s[i..<(i + n)])))
                i += n
            } else if isLetter(s[i]) {
                var j = i
                while j < s.count && isLetter(s[j]) { j += 1 }
                out.append(String(String.UnicodeScalarView(s[i..<j])))
                i = j
            } else if isNumber(s[i]) {
                out.append(String(s[i]))
                i += 1
            } else if !s[i].properties.isWhitespace {
                var j = i
                while j < s.count && !s[j].properties.isWhitespace && !isLetter(s[j]) && !isNumber(s[j]) { j += 1 }
                out.append(String(String.UnicodeScalarView(s[i..<j])))
                i = j
            } else {
                i += 1
            }
        }
        return out
    }

    /// Byte-pair merges of one pre-token (already byte-mapped); the last symbol carries "</w>".
    func bpe(_ token: String) -> [String] {
        lock.lock()
        if let hit = cache[token] { lock.unlock(); return hit }
        lock.unlock()
        if Self.specialTokens.contains(token) { return [token] }
        var word = token.unicodeScalars.map { String($0) }
        guard !word.isEmpty else { return [] }
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, index: Int)? = nil
            for i in 0..<(word.count - 1) {
                if let r = ranks[word[i] + " " + word[i + 1]], best == nil || r < best!.rank { best = (r, i) }
            }
            guard let b = best else { break }
            let (first, second) = (word[b.index], word[b.index + 1])
            // Merge every occurrence of the best pair, left to right (as CLIP's bpe loop does).
            var merged: [String] = []
            var i = 0
            while i < word.count {
                if i < word.count - 1 && word[i] == first && word[i + 1] == second {
                    merged.append(first + second)
                    i += 2
                } else {
                    merged.append(word[i])
                    i += 1
                }
            }
            word = merged
        }
        lock.lock(); cache[token] = word; lock.unlock()
        return word
    }
}
