// The engine's n-dimensional float32 array: contiguous, row-major (NCHW for images), 64-byte aligned.
//
// Tensors are values: `let` copies share storage and ops always return new tensors, so sharing is safe.
// Mutation goes through `withMutableData`, which copies storage first when it is shared
// (copy-on-write). Layout is an engine detail: model code sees shapes, never strides.
import CKernels
import Foundation

/// Reference-counted, aligned float buffer behind one or more tensors.
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int

    @usableFromInline init(count: Int) {
        precondition(count >= 0, "negative element count \(count)")
        _ = allocatorTuned
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if bytes >= LargeBlocks.minBytes, let block = LargeBlocks.shared.take(bytes: bytes) {
            base = block.bindMemory(to: Float.self, capacity: max(count, 1))
        } else {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
                fatalError("out of memory allocating \(bytes) bytes for a tensor")
            }
            base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        }
        self.count = count
    }

    deinit {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if bytes >= LargeBlocks.minBytes { LargeBlocks.shared.keep(UnsafeMutableRawPointer(base), bytes: bytes) } else { free(base) }
    }
}

/// glibc serves blocks above its mmap threshold (dynamic, at most 32 MiB) with fresh mappings and
/// hands freed heap tops back to the kernel, so a model that allocates and frees the same activation
/// sizes every layer pays a page fault and a kernel page clear per 4 KiB each time (a fifth of an SD
/// UNet call here). Keeping blocks up to 32 MiB on the heap and not trimming it lets them be reused;
/// the process keeps its peak heap instead of returning it between calls.
private let allocatorTuned: Void = lgap_tune_allocator()

/// Blocks of 32 MiB and more always come from mmap in glibc, so every 47 MB linear output or 75 MB
/// VAE activation would be faulted in and cleared page by page again on every call. Freed blocks that
/// large are kept here (the newest `capacityBytes` of them) and handed out again for the same size.
final class LargeBlocks: @unchecked Sendable {
    static let minBytes = 32 << 20
    static let capacityBytes = 512 << 20
    static let shared = LargeBlocks()

    private let lock = NSLock()
    private var blocks: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []  // oldest first
    private var heldBytes = 0

    func take(bytes: Int) -> UnsafeMutableRawPointer? {
        lock.lock()
        defer { lock.unlock() }
        guard let i = blocks.lastIndex(where: { $0.bytes == bytes }) else { return nil }
        heldBytes -= bytes
        return blocks.remove(at: i).pointer
    }

    /// Keeps a freed block for reuse, releasing the oldest ones beyond the capacity.
    func keep(_ block: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        blocks.append((bytes, block))
        heldBytes += bytes
        while heldBytes > Self.capacityBytes, !blocks.isEmpty {
            let old = blocks.removeFirst()
            heldBytes -= old.bytes
            Foundation.free(old.pointer)
        }
    }
}

public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// Number of elements.
    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// A tensor whose contents are undefined; every element must be written before it is read.
    public init(uninitialized shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: Tensor.elementCount(shape))
    }

    public init(zeros shape: [Int]) {
        self.init(uninitialized: shape)
        storage.base.initialize(repeating: 0, count: storage.count)
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(uninitialized: shape)
        storage.base.initialize(repeating: value, count: storage.count)
    }

    public init(shape: [Int], data: [Float]) {
        precondition(
            Tensor.elementCount(shape) == data.count,
            "shape \(shape) holds \(Tensor.elementCount(shape)) elements, got \(data.count)")
        self.init(uninitialized: shape)
        data.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { storage.base.update(from: s, count: data.count) }
        }
    }

    /// Copies `count` floats from `pointer`.
    public init(shape: [Int], copying pointer: UnsafePointer<Float>) {
        self.init(uninitialized: shape)
        storage.base.update(from: pointer, count: storage.count)
    }

    init(shape: [Int], storage: TensorStorage) {
        precondition(
            Tensor.elementCount(shape) == storage.count,
            "shape \(shape) does not match \(storage.count) stored elements")
        self.shape = shape
        self.storage = storage
    }

    public static func elementCount(_ shape: [Int]) -> Int {
        shape.reduce(1) { acc, d in
            precondition(d >= 0, "negative dimension in shape \(shape)")
            return acc * d
        }
    }

    // MARK: Access

    /// Read access to the elements for the duration of `body`.
    @inlinable
    public func withData<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafePointer(storage.base)) }
    }

    /// Write access; copies the storage first when another tensor shares it.
    @inlinable
    public mutating func withMutableData<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: storage.count)
            copy.base.update(from: storage.base, count: storage.count)
            storage = copy
        }
        return try withExtendedLifetime(storage) { try body(storage.base) }
    }

    /// Write access to a tensor the caller has just created and not shared (op outputs); no copy check.
    @inlinable
    public func withFreshData<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(storage.base) }
    }

    public var scalars: [Float] { withData { Array(UnsafeBufferPointer(start: $0, count: count)) } }

    public subscript(flat index: Int) -> Float {
        get {
            precondition(index >= 0 && index < count, "flat index \(index) out of range 0..<\(count)")
            return withData { $0[index] }
        }
        set {
            precondition(index >= 0 && index < count, "flat index \(index) out of range 0..<\(count)")
            withMutableData { $0[index] = newValue }
        }
    }

    /// Element at a full multi-index (for tests and small lookups, not hot loops).
    public subscript(_ index: Int...) -> Float {
        precondition(index.count == rank, "index \(index) for shape \(shape)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of range for shape \(shape)")
            flat = flat * d + i
        }
        return withData { $0[flat] }
    }

    // MARK: Shape

    /// Same elements, new shape (one dimension may be -1). Shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let hole = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != hole }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[hole] = count / known
        }
        precondition(Tensor.elementCount(s) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        return Tensor(shape: s, storage: storage)
    }

    public func dim(_ axis: Int) -> Int { shape[normalizedAxis(axis)] }

    public func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// A deep copy with its own storage.
    public func copy() -> Tensor {
        let out = Tensor(uninitialized: shape)
        withData { src in out.withFreshData { $0.update(from: src, count: count) } }
        return out
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 8 ? ", …" : "")]"
    }
}
