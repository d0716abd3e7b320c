/// Ends mqadmin with a message on stderr and an exit code.
struct Exit: Error {
    var code: Int32
    var message: String
}
