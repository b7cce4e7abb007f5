// Text from peers (ids that failed validation, labels, meta, error messages quoting input) is shown
// to operators in logs and terminals. Control characters in it could forge log lines ("\n… job
// done") or drive a terminal (ESC sequences), and bidirectional overrides could reorder what a
// reader sees. Every human-readable output passes such text through `Sanitize.text`, which writes
// those characters as visible escapes (\u{1B}) and keeps everything else.

public enum Sanitize {
    public static func text(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isUnsafe) else { return s }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if isUnsafe(u) {
                out.append(contentsOf: "\\u{\(String(u.value, radix: 16, uppercase: true))}".unicodeScalars)
            } else {
                out.append(u)
            }
        }
        return String(out)
    }

    /// C0 controls but tab, C1 controls, DEL, line/paragraph separators and bidirectional formatting characters.
    public static func isUnsafe(_ u: Unicode.Scalar) -> Bool {
        let v = u.value
        return (v < 0x20 && v != 0x09) || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || (0x202A...0x202E).contains(v)
            || (0x2066...0x2069).contains(v) || v == 0x200E || v == 0x200F || v == 0x061C
    }
}
