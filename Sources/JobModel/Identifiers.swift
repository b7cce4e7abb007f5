// The shapes of names that travel between processes and into logs: job ids (from producers) and node
// names (from configuration). Both are restricted to characters that need no escaping anywhere.

public enum Identifiers {
    /// A job id: 1–128 characters of [A-Za-z0-9._:-].
    public static func isValidJobID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && id.utf8.allSatisfy { c in isAlphanumeric(c) || c == 0x2E || c == 0x5F || c == 0x3A || c == 0x2D }
    }

    /// A node name: 1–64 characters of [A-Za-z0-9._-].
    public static func isValidNodeName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy { c in isAlphanumeric(c) || c == 0x2E || c == 0x5F || c == 0x2D }
    }

    static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }
}
