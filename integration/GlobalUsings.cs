// What nearly every integration test uses: the CRI messages and client, gRPC status codes, the harness.
global using CriShim.Integration.Harness;
global using Grpc.Core;
global using Runtime.V1;
