//! The gRPC routes of the metrics service. `Ingest` and `IngestStream` take their request
//! messages as bytes (a codec that only frames them) and decode them with the zero-copy
//! reader of `wire`; every other method goes to the generated server.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use taskloom_proto::v1::metrics_service_server::{MetricsServiceServer, SERVICE_NAME};
use taskloom_proto::v1::{IngestResponse, IngestStreamResponse};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{ClientStreamingService, Grpc, UnaryService};
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use crate::service::MetricsGrpc;

/// Requests as their encoded bytes, responses encoded by prost.
struct EncodedRequestCodec<R>(PhantomData<R>);

impl<R> Default for EncodedRequestCodec<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

struct ProstEncoder<R>(PhantomData<R>);

impl<R: prost::Message> Encoder for ProstEncoder<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // tonic hands over one whole message; taking it is a split of its buffer, no copy.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl<R: prost::Message + Send + 'static> Codec for EncodedRequestCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ProstEncoder<R>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

#[derive(Clone)]
struct IngestHandler(Arc<MetricsGrpc>);

impl UnaryService<Bytes> for IngestHandler {
    type Response = IngestResponse;
    type Future = BoxFuture<Response<IngestResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let grpc = Arc::clone(&self.0);
        Box::pin(async move {
            let outcome = grpc
                .ingest_encoded(request.get_ref())
                .map_err(|e| e.status(None))?;
            Ok(Response::new(IngestResponse {
                accepted: outcome.accepted as i64,
                rejected: outcome.dropped_total() as i64,
            }))
        })
    }
}

impl ClientStreamingService<Bytes> for IngestHandler {
    type Response = IngestStreamResponse;
    type Future = BoxFuture<Response<IngestStreamResponse>, Status>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let grpc = Arc::clone(&self.0);
        Box::pin(async move {
            grpc.ingest_batches(request.into_inner(), |grpc, batch: &Bytes| {
                grpc.ingest_encoded(batch)
            })
            .await
            .map(Response::new)
        })
    }
}

/// Which of the two ingest methods a route serves.
#[derive(Clone, Copy)]
enum Method {
    Ingest,
    IngestStream,
}

#[derive(Clone)]
struct EncodedIngestRoute {
    handler: IngestHandler,
    method: Method,
}

impl<B> Service<http::Request<B>> for EncodedIngestRoute
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let handler = self.handler.clone();
        let method = self.method;
        Box::pin(async move {
            Ok(match method {
                Method::Ingest => {
                    let mut grpc = Grpc::new(EncodedRequestCodec::<IngestResponse>::default());
                    grpc.unary(handler, request).await
                }
                Method::IngestStream => {
                    let mut grpc =
                        Grpc::new(EncodedRequestCodec::<IngestStreamResponse>::default());
                    grpc.client_streaming(handler, request).await
                }
            })
        })
    }
}

/// The service's routes: the two ingest methods decoded in place, the rest generated.
pub fn routes(grpc: Arc<MetricsGrpc>) -> Routes {
    let route = |method| EncodedIngestRoute {
        handler: IngestHandler(Arc::clone(&grpc)),
        method,
    };
    let router = axum::Router::new()
        .route_service(&format!("/{SERVICE_NAME}/Ingest"), route(Method::Ingest))
        .route_service(
            &format!("/{SERVICE_NAME}/IngestStream"),
            route(Method::IngestStream),
        )
        .route_service(
            &format!("/{SERVICE_NAME}/{{*method}}"),
            MetricsServiceServer::from_arc(Arc::clone(&grpc)),
        );
    Routes::from(router)
}
