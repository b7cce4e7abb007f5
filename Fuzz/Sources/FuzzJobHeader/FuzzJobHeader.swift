// libFuzzer target: the job-header parser must throw or return, never crash or hang.
import LGAPFuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntry.jobHeader(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
