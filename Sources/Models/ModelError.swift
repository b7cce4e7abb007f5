// Errors raised while loading model folders: each names the file and what is wrong with it.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case badConfig(String, String)
    case badInput(String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): file not found"
        case .badConfig(let path, let reason): return "\(path): \(reason)"
        case .badInput(let reason): return reason
        }
    }
}
