// The caption consistency flag: does the caption name the predicted class, another class, or none?
// Class names and their synonyms come from the pack (pack.json "synonyms").
import JobModel
import Models

public struct ConsistencyCheck: Sendable {
    public let classes: [String]
    public let synonyms: [String: [String]]

    public init(classes: [String], synonyms: [String: [String]]) {
        self.classes = classes
        self.synonyms = synonyms
    }

    public init(_ manifest: PackManifest) { self.init(classes: manifest.classes, synonyms: manifest.synonyms) }

    /// Classes named by `caption`: whole-word, case-insensitive matches of a class name or any of its
    /// synonyms (multi-word synonyms included).
    public func mentioned(in caption: String) -> [Int] {
        let words = caption.lowercased().split { !$0.isLetter && !$0.isNumber && $0 != "'" }.map(String.init)
        let text = " " + words.joined(separator: " ") + " "
        return classes.indices.filter { i in
            let names = (synonyms[classes[i]] ?? []) + [classes[i]]
            return names.contains { text.contains(" " + $0.lowercased() + " ") }
        }
    }

    public func flag(caption: String, predicted: Int) -> Consistency {
        let named = mentioned(in: caption)
        return named.contains(predicted) ? .consistent : (named.isEmpty ? .noClass : .inconsistent)
    }
}
