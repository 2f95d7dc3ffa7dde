//! The gRPC codec of the crate's services: prost's, except that a message's buffer is sized
//! to the message before it is encoded.
//!
//! tonic encodes into a buffer that starts small and grows by doubling as the message is
//! written, copying what is already there at each step: a 10 MiB GetRecords answer was copied
//! about twice over on its way into the buffer. Knowing the encoded length up front (prost
//! computes it anyway), one reservation makes the buffer large enough at once. Decoding is
//! prost's, unchanged. `build.rs` names this codec for every generated service and client, so
//! every call of the integration tests goes through it (tonic's buffers cannot be built
//! outside tonic, so there is no unit test here).

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder};

/// A [`Codec`] that sizes the encode buffer to each message; see the module doc.
#[derive(Debug, Clone)]
pub struct PresizedCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for PresizedCodec<T, U> {
    fn default() -> Self {
        PresizedCodec {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for PresizedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = PresizedEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        PresizedEncoder {
            _message: PhantomData,
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.inner.decoder()
    }
}

/// Encodes a message after reserving its encoded length in the buffer.
#[derive(Debug, Clone)]
pub struct PresizedEncoder<T> {
    _message: PhantomData<T>,
}

impl<T: Message> Encoder for PresizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        // The room is reserved, and a `BytesMut` would grow anyway: `Message::encode` would
        // only compute the length a second time to check it.
        item.encode_raw(buf);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
