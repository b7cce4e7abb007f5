// Port of transformers' BasicTokenizer (models/bert/tokenization_bert.py): text clean-up, CJK
// spacing, NFC, whitespace split, lower-casing with optional accent stripping, optional punctuation
// split. BERT's WordPiece (BLIP's captioner) and CLIP's BPE (when ftfy is absent, which is how
// transformers' CLIPTokenizer runs here) both start with it. Python iterates code points, so this
// works on Unicode scalars, never on grapheme clusters.
import Foundation

public struct BasicTokenizer: Sendable {
    public var lowerCase = true
    /// nil: strip accents when lower-casing (BERT's default); true/false force it.
    public var stripAccents: Bool? = nil
    public var splitOnPunctuation = true
    public var tokenizeChineseChars = true
    public var neverSplit: Set<String> = []

    public init(
        lowerCase: Bool = true, stripAccents: Bool? = nil, splitOnPunctuation: Bool = true,
        tokenizeChineseChars: Bool = true, neverSplit: Set<String> = []
    ) {
        self.lowerCase = lowerCase
        self.stripAccents = stripAccents
        self.splitOnPunctuation = splitOnPunctuation
        self.tokenizeChineseChars = tokenizeChineseChars
        self.neverSplit = neverSplit
    }

    public func tokenize(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
            if Self.isWhitespace(s) {
                cleaned.append(" ")
            } else if tokenizeChineseChars && Self.isChineseChar(s.value) {
                cleaned.append(" "); cleaned.append(s); cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        let normalized = String(cleaned).precomposedStringWithCanonicalMapping
        var split: [String] = []
        for var token in Self.whitespaceSplit(normalized) {
            if !neverSplit.contains(token) {
                if lowerCase {
                    token = token.lowercased()
                    if stripAccents != false { token = Self.stripAccents(token) }
                } else if stripAccents == true {
                    token = Self.stripAccents(token)
                }
            }
            split += splitOnPunctuation && !neverSplit.contains(token) ? Self.splitPunctuation(token) : [token]
        }
        return Self.whitespaceSplit(split.joined(separator: " "))
    }

    // MARK: Character classes (transformers' _is_whitespace, _is_control, _is_punctuation)

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        if s == " " || s == "\t" || s == "\n" || s == "\r" { return true }
        return s.properties.generalCategory == .spaceSeparator
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let cp = s.value
        if (33...47).contains(cp) || (58...64).contains(cp) || (91...96).contains(cp) || (123...126).contains(cp) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    static func isChineseChar(_ cp: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(cp) || (0x3400...0x4DBF).contains(cp) || (0x20000...0x2A6DF).contains(cp)
            || (0x2A700...0x2B73F).contains(cp) || (0x2B740...0x2B81F).contains(cp) || (0x2B820...0x2CEAF).contains(cp)
            || (0xF900...0xFAFF).contains(cp) || (0x2F800...0x2FA1F).contains(cp)
    }

    /// Python's str.split(): runs of Unicode whitespace separate tokens.
    static func whitespaceSplit(_ text: String) -> [String] {
        var out: [String] = []
        var current = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.properties.isWhitespace {
                if !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() }
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { out.append(String(current)) }
        return out
    }

    /// NFD, then drop nonspacing marks (category Mn).
    static func stripAccents(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for s in text.decomposedStringWithCanonicalMapping.unicodeScalars where s.properties.generalCategory != .nonspacingMark {
            out.append(s)
        }
        return String(out)
    }

    static func splitPunctuation(_ text: String) -> [String] {
        var out: [String] = []
        var current = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if isPunctuation(s) {
                if !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() }
                out.append(String(s))
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { out.append(String(current)) }
        return out
    }
}
