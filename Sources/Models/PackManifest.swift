// pack.json: what a model pack holds and how to run it (classes and caption synonyms, the size the
// purifier works at, default purification and captioning parameters, licences).
import Foundation

public struct PackManifest: Codable, Sendable {
    public struct Purification: Codable, Sendable {
        public var strength: Double
        public var steps: Int
        public var guidance: Double
        public var eta: Double?
        public var ensemble: Int?
    }

    public struct Captioning: Codable, Sendable {
        public var numBeams: Int?
        public var minLength: Int?
        public var maxLength: Int?
        public var prompt: String?

        enum CodingKeys: String, CodingKey {
            case prompt
            case numBeams = "num_beams", minLength = "min_length", maxLength = "max_length"
        }
    }

    public var name: String
    public var version: String
    public var description: String?
    public var classes: [String]
    /// Words that name each class in captions (the consistency flag reads these).
    public var synonyms: [String: [String]]
    /// [height, width] the purifier works at; images of another size are resized there and back.
    public var imageSize: [Int]?
    /// How images are resized to and from imageSize: "bicubic" or "bilinear" (torch interpolate).
    public var resize: String?
    public var purification: Purification
    public var captioning: Captioning?
    public var licenses: [String: String]?

    enum CodingKeys: String, CodingKey {
        case name, version, description, classes, synonyms, resize, purification, captioning, licenses
        case imageSize = "image_size"
    }

    public static func load(folder: String) throws -> PackManifest {
        let path = folder + "/pack.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.missingFile(path) }
        let m: PackManifest
        do { m = try JSONDecoder().decode(PackManifest.self, from: data) } catch { throw ModelError.badConfig(path, describe(error)) }
        guard !m.classes.isEmpty else { throw ModelError.badConfig(path, "classes is empty") }
        for c in m.synonyms.keys where !m.classes.contains(c) { throw ModelError.badConfig(path, "synonyms for unknown class '\(c)'") }
        if let s = m.imageSize, s.count != 2 || s.contains(where: { $0 <= 0 }) { throw ModelError.badConfig(path, "image_size must be [height, width]") }
        if let r = m.resize, !["bicubic", "bilinear"].contains(r) { throw ModelError.badConfig(path, "resize must be bicubic or bilinear, got '\(r)'") }
        return m
    }
}
