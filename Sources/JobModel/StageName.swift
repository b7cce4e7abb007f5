// The pipeline's stages, in order. A job is inside exactly one of them while it is `processing`;
// the store records which, so a crash can be blamed on the jobs inside the stage that died.

public enum StageName: String, Codable, Sendable, CaseIterable, Comparable {
    case decode, caption, purify, classify

    /// Pipeline order.
    public static func < (a: StageName, b: StageName) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
