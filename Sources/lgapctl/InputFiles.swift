// Expands FILES|DIRS arguments: files as given, directories walked recursively for image files.
import Foundation

enum InputFiles {
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "ppm"]

    /// Files in argument order; each directory contributes its image files sorted by path.
    static func expand(_ paths: [String]) -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue else {
                out.append(p)  // a missing file is reported as an error line for that file
                continue
            }
            var found: [String] = []
            if let e = fm.enumerator(atPath: p) {
                for case let rel as String in e where imageExtensions.contains((rel as NSString).pathExtension.lowercased()) {
                    found.append((p as NSString).appendingPathComponent(rel))
                }
            }
            out += found.sorted()
        }
        return out
    }
}
