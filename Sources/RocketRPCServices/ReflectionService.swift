import RocketMQAPI
import RocketProto
import RocketRPC

/// `grpc.reflection.v1.ServerReflection` and its older twin `v1alpha` (still what many tools ask
/// first): lets grpcurl, Postman, `mqadmin` and grpcio-reflection clients list the services and
/// fetch their schemas without local `.proto` files.
public enum ServerReflection {
    /// Both reflection services, describing `services` plus reflection itself.
    ///
    /// Pass every other service the server runs (health included); the returned values go into
    /// the same `RPCServer`.
    public static func services(describing services: [any RPCService]) -> [any RPCService] {
        let described = services.compactMap { $0 as? any ProtoServiceDescribing }
        let v1 = ReflectionV1(index: nil)
        let alpha = ReflectionV1Alpha(index: nil)
        let index = ReflectionIndex(services: described + [v1, alpha])
        return [ReflectionV1(index: index), ReflectionV1Alpha(index: index)]
    }
}

struct ReflectionV1: Grpc_Reflection_V1_ServerReflection.ServiceProtocol {
    typealias Request = Grpc_Reflection_V1_ServerReflectionRequest
    typealias Response = Grpc_Reflection_V1_ServerReflectionResponse

    let index: ReflectionIndex?

    func serverReflectionInfo(requests: RequestStream<Request>, response: ResponseWriter<Response>, context: ServerContext) async throws {
        for try await request in requests {
            try await response.write(answer(request))
        }
    }

    func answer(_ request: Request) -> Response {
        let question: ReflectionIndex.Question
        switch request.messageRequest {
        case .fileByFilename(let name)?: question = .fileByFilename(name)
        case .fileContainingSymbol(let symbol)?: question = .fileContainingSymbol(symbol)
        case .fileContainingExtension(let ext)?: question = .fileContainingExtension(type: ext.containingType, number: ext.extensionNumber)
        case .allExtensionNumbersOfType(let type)?: question = .allExtensionNumbers(type: type)
        case .listServices?: question = .listServices
        case nil: question = .none
        }
        var answer = Response(validHost: request.host, originalRequest: request)
        switch index?.answer(question) ?? .error(code: 14, message: "reflection index not ready") {
        case .files(let files):
            answer.messageResponse = .fileDescriptorResponse(.init(fileDescriptorProto: files))
        case .services(let names):
            answer.messageResponse = .listServicesResponse(.init(service: names.map { .init(name: $0) }))
        case .extensionNumbers(let type, let numbers):
            answer.messageResponse = .allExtensionNumbersResponse(.init(baseTypeName: type, extensionNumber: numbers))
        case .error(let code, let message):
            answer.messageResponse = .errorResponse(.init(errorCode: code, errorMessage: message))
        }
        return answer
    }
}

/// v1alpha's messages are v1's, field for field, under another package: requests and answers
/// are transcoded through their (identical) wire bytes and served by the v1 logic.
struct ReflectionV1Alpha: Grpc_Reflection_V1alpha_ServerReflection.ServiceProtocol {
    let index: ReflectionIndex?

    func serverReflectionInfo(
        requests: RequestStream<Grpc_Reflection_V1alpha_ServerReflectionRequest>,
        response: ResponseWriter<Grpc_Reflection_V1alpha_ServerReflectionResponse>,
        context: ServerContext
    ) async throws {
        let v1 = ReflectionV1(index: index)
        for try await request in requests {
            let answer = v1.answer(try ReflectionV1.Request(serializedBytes: request.serializedBytes()))
            try await response.write(try .init(serializedBytes: answer.serializedBytes()))
        }
    }
}
