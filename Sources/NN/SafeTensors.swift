// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then data.
//
// The reader memory-maps the file and validates everything before any tensor is touched: header
// length within the file, JSON shape, known dtypes, non-negative shapes, and data offsets that lie
// inside the data section and match shape × dtype size. F32, F16 and BF16 load as float32.
import Foundation
import Tensor

public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case io(path: String, reason: String)
    case badHeader(path: String, reason: String)
    case unknownTensor(path: String, name: String)
    case unsupportedDType(path: String, name: String, dtype: String)

    public var description: String {
        switch self {
        case .io(let path, let reason): return "\(path): \(reason)"
        case .badHeader(let path, let reason): return "\(path): invalid safetensors header: \(reason)"
        case .unknownTensor(let path, let name): return "\(path): no tensor named '\(name)'"
        case .unsupportedDType(let path, let name, let dtype): return "\(path): tensor '\(name)' has dtype \(dtype), which cannot be read as float"
        }
    }
}

public enum DType: String, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

public struct TensorInfo: Sendable, Equatable {
    public let dtype: DType
    public let shape: [Int]
    public let begin: Int
    public let end: Int
}

/// A read-only memory map that unmaps itself.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SafeTensorsError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafeTensorsError.io(path: path, reason: String(cString: strerror(errno))) }
        size = Int(st.st_size)
        guard size > 0 else { throw SafeTensorsError.badHeader(path: path, reason: "file is empty") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SafeTensorsError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    let map: MappedFile
    let dataStart: Int

    /// Largest header accepted (the format's own reference limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    public init(path: String) throws {
        self.path = path
        map = try MappedFile(path: path)
        guard map.size >= 8 else { throw SafeTensorsError.badHeader(path: path, reason: "file shorter than the 8-byte length prefix") }
        let n = map.base.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= UInt64(Self.maxHeaderBytes), Int(n) <= map.size - 8 else {
            throw SafeTensorsError.badHeader(
                path: path, reason: "header length \(n) exceeds the file (\(map.size) bytes) or the \(Self.maxHeaderBytes)-byte limit")
        }
        dataStart = 8 + Int(n)
        let headerData = Data(bytes: map.base + 8, count: Int(n))
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let dict = json as? [String: Any] else {
            throw SafeTensorsError.badHeader(path: path, reason: "header is not a JSON object")
        }
        let dataSize = map.size - dataStart
        var infos: [String: TensorInfo] = [:]
        var meta: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw SafeTensorsError.badHeader(path: path, reason: "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw SafeTensorsError.badHeader(path: path, reason: "__metadata__.\(k) is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any],
                let dtypeName = entry["dtype"] as? String,
                let shapeAny = entry["shape"] as? [Any],
                let offsetsAny = entry["data_offsets"] as? [Any], offsetsAny.count == 2
            else {
                throw SafeTensorsError.badHeader(path: path, reason: "entry '\(name)' needs dtype, shape and two data_offsets")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw SafeTensorsError.badHeader(path: path, reason: "entry '\(name)' has unknown dtype \(dtypeName)")
            }
            let shape = try shapeAny.map { d -> Int in
                guard let n = (d as? NSNumber)?.intValue, n >= 0 else {
                    throw SafeTensorsError.badHeader(path: path, reason: "entry '\(name)' has a bad shape \(shapeAny)")
                }
                return n
            }
            let offs = try offsetsAny.map { d -> Int in
                guard let n = (d as? NSNumber)?.intValue else {
                    throw SafeTensorsError.badHeader(path: path, reason: "entry '\(name)' has bad data_offsets")
                }
                return n
            }
            let elements = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            guard offs[0] >= 0, offs[1] >= offs[0], offs[1] <= dataSize else {
                throw SafeTensorsError.badHeader(path: path, reason: "entry '\(name)' data_offsets \(offs) outside the \(dataSize)-byte data section")
            }
            guard offs[1] - offs[0] == elements * dtype.size else {
                throw SafeTensorsError.badHeader(
                    path: path, reason: "entry '\(name)' spans \(offs[1] - offs[0]) bytes but \(dtypeName)\(shape) needs \(elements * dtype.size)")
            }
            infos[name] = TensorInfo(dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
        }
        tensors = infos
        metadata = meta
    }

    public var names: [String] { tensors.keys.sorted() }

    /// The tensor `name` as float32 (F32, F16, BF16 and F64 are converted).
    public func tensor(_ name: String) throws -> Tensor {
        guard let info = tensors[name] else { throw SafeTensorsError.unknownTensor(path: path, name: name) }
        let src = map.base + dataStart + info.begin
        let out = Tensor(uninitialized: info.shape)
        let n = out.count
        try out.withFreshData { dst in
            switch info.dtype {
            case .f32:
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: n * 4)
            case .f16:
                for i in 0..<n { dst[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .bf16:
                for i in 0..<n { dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
            case .f64:
                for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            default:
                throw SafeTensorsError.unsupportedDType(path: path, name: name, dtype: info.dtype.rawValue)
            }
        }
        return out
    }

    /// An integer tensor (I64, I32, I16, I8, U8, BOOL) as [Int], with its shape.
    public func integers(_ name: String) throws -> (shape: [Int], values: [Int]) {
        guard let info = tensors[name] else { throw SafeTensorsError.unknownTensor(path: path, name: name) }
        let src = map.base + dataStart + info.begin
        let n = info.shape.reduce(1, *)
        let values: [Int]
        switch info.dtype {
        case .i64: values = (0..<n).map { Int(src.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        case .i32: values = (0..<n).map { Int(src.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        case .i16: values = (0..<n).map { Int(src.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
        case .i8: values = (0..<n).map { Int(src.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
        case .u8, .bool: values = (0..<n).map { Int(src.loadUnaligned(fromByteOffset: $0, as: UInt8.self)) }
        default: throw SafeTensorsError.unsupportedDType(path: path, name: name, dtype: info.dtype.rawValue)
        }
        return (info.shape, values)
    }
}

public enum SafeTensorsWriter {
    /// Writes float tensors as F32 (or F16 with `half`), names in sorted order, with optional metadata.
    public static func write(
        _ tensors: [String: Tensor], to path: String, metadata: [String: String] = [:],
        half: Bool = false
    ) throws {
        let dtype: DType = half ? .f16 : .f32
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            let bytes = t.count * dtype.size
            header[name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces to a multiple of 8 so the data section is aligned.
        while (json.count % 8) != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            let t = tensors[name]!
            t.withData { p in
                if half {
                    var halves = [UInt16](repeating: 0, count: t.count)
                    for i in 0..<t.count { halves[i] = Float16(p[i]).bitPattern.littleEndian }
                    halves.withUnsafeBytes { out.append(contentsOf: $0) }
                } else {
                    out.append(UnsafeBufferPointer(start: p, count: t.count))
                }
            }
        }
        do {
            try out.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SafeTensorsError.io(path: path, reason: error.localizedDescription)
        }
    }
}
