/// Request data that could not be read or parsed while a streaming call was under way.
struct RequestDataError: Error {
    var underlying: any Error
}
