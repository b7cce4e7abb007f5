// Whether the caption agrees with the classifier: the flag every result carries (the computation,
// from the pack's class synonyms, lives in JobProcessing).

public enum Consistency: String, Codable, Sendable, CaseIterable {
    /// The caption names the predicted class.
    case consistent
    /// It names classes, but not the predicted one.
    case inconsistent
    /// It names no class.
    case noClass = "no_class"
}
