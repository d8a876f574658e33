//! Zero-copy decoding of `IngestRequest` / `IngestStreamRequest` bytes (both are
//! `repeated MetricSample samples = 1`) into `SampleView`s that borrow from the bytes.
//!
//! Written by hand because it is the ingest hot path: prost decodes each sample into owned
//! `String`s and a `HashMap`, about eight allocations per sample, which would cost more than
//! the whole aggregation. The reader follows the protobuf wire format (packed and unpacked
//! repeated scalars, last-wins scalars, merged sub-messages, skipped unknown fields) and is
//! checked against prost's encoder in the tests below.

use crate::sample::{ExemplarView, HistogramView, SampleView};

/// Why the bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Where, as a field path (`samples[3].labels`).
    pub field: String,
    pub message: &'static str,
}

type Result<T> = std::result::Result<T, &'static str>;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A cursor over protobuf wire bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn done(&self) -> bool {
        self.bytes.is_empty()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err("truncated or overlong varint")
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        if field == 0 {
            return Err("field number 0");
        }
        Ok((field, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err("truncated field");
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| "length out of range")?)
    }

    fn fixed64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn double(&mut self) -> Result<f64> {
        self.fixed64().map(f64::from_bits)
    }

    /// A string field's bytes: UTF-8 is checked where the service keeps a string (see
    /// `validate`), not for every sample of a series it already holds.
    fn string(&mut self) -> Result<&'a [u8]> {
        self.len_delimited()
    }

    fn skip(&mut self, wire_type: u8) -> Result<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            _ => Err("unsupported wire type (groups are not used by this message)"),
        }
    }

    /// Checks the wire type of a known field.
    fn expect(wire_type: u8, expected: u8) -> Result<()> {
        if wire_type == expected {
            Ok(())
        } else {
            Err("unexpected wire type for the field")
        }
    }
}

/// Decodes the samples of an ingest request.
pub fn decode_samples(bytes: &[u8]) -> std::result::Result<Vec<SampleView<'_>>, Malformed> {
    let mut reader = Reader::new(bytes);
    // A sample is rarely under 40 bytes: reserve once rather than grow and move views.
    let mut samples = Vec::with_capacity(bytes.len() / 40);
    while !reader.done() {
        let at = samples.len();
        let malformed = |message| Malformed {
            field: format!("samples[{at}]"),
            message,
        };
        let (field, wire_type) = reader.key().map_err(malformed)?;
        if field == 1 {
            Reader::expect(wire_type, LEN).map_err(malformed)?;
            let body = reader.len_delimited().map_err(malformed)?;
            // Decoded in place: a view is a few hundred bytes, moved by the thousand.
            samples.push(SampleView::default());
            let sample = samples.last_mut().expect("just pushed");
            decode_sample(body, sample).map_err(malformed)?;
        } else {
            reader.skip(wire_type).map_err(malformed)?;
        }
    }
    Ok(samples)
}

fn decode_sample<'a>(bytes: &'a [u8], sample: &mut SampleView<'a>) -> Result<()> {
    let mut reader = Reader::new(bytes);
    while !reader.done() {
        let (field, wire_type) = reader.key()?;
        match field {
            1 => {
                Reader::expect(wire_type, LEN)?;
                sample.name = reader.string()?;
            }
            2 => {
                Reader::expect(wire_type, VARINT)?;
                // Enums are int32 on the wire: negative values are sign-extended varints.
                sample.kind = reader.varint()? as i32;
            }
            3 => {
                Reader::expect(wire_type, FIXED64)?;
                sample.value = reader.double()?;
            }
            4 => {
                Reader::expect(wire_type, LEN)?;
                sample.labels.push(decode_label(reader.len_delimited()?)?);
            }
            5 => {
                Reader::expect(wire_type, LEN)?;
                sample.help = reader.string()?;
            }
            6 => {
                Reader::expect(wire_type, LEN)?;
                // A repeated sub-message field merges into the one before it.
                let histogram = sample.histogram.get_or_insert_with(Box::default);
                merge_histogram(histogram, reader.len_delimited()?)?;
            }
            7 => {
                Reader::expect(wire_type, LEN)?;
                sample
                    .exemplars
                    .push(decode_exemplar(reader.len_delimited()?)?);
            }
            _ => reader.skip(wire_type)?,
        }
    }
    Ok(())
}

/// A map entry: key = 1, value = 2, either may be absent (then empty).
fn decode_label(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let mut reader = Reader::new(bytes);
    let (mut key, mut value): (&[u8], &[u8]) = (b"", b"");
    while !reader.done() {
        match reader.key()? {
            (1, LEN) => key = reader.string()?,
            (2, LEN) => value = reader.string()?,
            (1 | 2, _) => return Err("unexpected wire type for the field"),
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok((key, value))
}

fn merge_histogram(histogram: &mut HistogramView<'_>, bytes: &[u8]) -> Result<()> {
    let mut reader = Reader::new(bytes);
    while !reader.done() {
        match reader.key()? {
            (1, LEN) => {
                let packed = reader.len_delimited()?;
                if packed.len() % 8 != 0 {
                    return Err("packed doubles not a multiple of 8 bytes");
                }
                let bounds = histogram.bounds.to_mut();
                bounds.extend(
                    packed
                        .chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
                );
            }
            (1, FIXED64) => {
                let bound = reader.double()?;
                histogram.bounds.to_mut().push(bound);
            }
            (2, LEN) => {
                let mut packed = Reader::new(reader.len_delimited()?);
                let counts = histogram.counts.to_mut();
                while !packed.done() {
                    counts.push(packed.varint()?);
                }
            }
            (2, VARINT) => {
                let count = reader.varint()?;
                histogram.counts.to_mut().push(count);
            }
            (3, FIXED64) => histogram.sum = reader.double()?,
            (1..=3, _) => return Err("unexpected wire type for the field"),
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(())
}

fn decode_exemplar(bytes: &[u8]) -> Result<ExemplarView<'_>> {
    let mut reader = Reader::new(bytes);
    let mut exemplar = ExemplarView {
        trace_id: b"",
        value: 0.0,
        time: None,
    };
    while !reader.done() {
        match reader.key()? {
            (1, LEN) => exemplar.trace_id = reader.string()?,
            (2, FIXED64) => exemplar.value = reader.double()?,
            (3, LEN) => {
                let time = exemplar.time.get_or_insert((0, 0));
                merge_timestamp(time, reader.len_delimited()?)?;
            }
            (1..=3, _) => return Err("unexpected wire type for the field"),
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(exemplar)
}

/// google.protobuf.Timestamp: seconds = 1 (int64), nanos = 2 (int32).
fn merge_timestamp(time: &mut (i64, i32), bytes: &[u8]) -> Result<()> {
    let mut reader = Reader::new(bytes);
    while !reader.done() {
        match reader.key()? {
            (1, VARINT) => time.0 = reader.varint()? as i64,
            (2, VARINT) => time.1 = reader.varint()? as i32,
            (1 | 2, _) => return Err("unexpected wire type for the field"),
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::HashMap;
    use taskloom_proto::v1::{Exemplar, HistogramData, IngestRequest, MetricKind, MetricSample};

    fn full_sample(i: usize) -> MetricSample {
        MetricSample {
            name: format!("metric_{i}_seconds"),
            kind: MetricKind::Histogram.into(),
            value: i as f64 * 0.25 - 1.0,
            labels: HashMap::from([
                ("agent".to_string(), format!("agent-{i}")),
                ("model".to_string(), "sim-1 \"quoted\" ünïcode".to_string()),
                ("empty".to_string(), String::new()),
            ]),
            help: format!("Help text {i}"),
            histogram: Some(HistogramData {
                bounds: vec![0.1, 1.0, 10.0],
                counts: vec![i as u64, 0, 300, u64::MAX],
                sum: 12.5,
            }),
            exemplars: vec![Exemplar {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                value: 0.42,
                time: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 123_000_000,
                }),
            }],
        }
    }

    fn assert_same<'a>(view: &SampleView<'a>, sample: &'a MetricSample) {
        let mut expected = SampleView::from(sample);
        let mut got = view.clone();
        expected.normalize_labels();
        got.normalize_labels();
        assert_eq!(got, expected);
    }

    #[test]
    fn decodes_what_prost_encodes() {
        let request = IngestRequest {
            samples: (0..50)
                .map(full_sample)
                .chain([
                    MetricSample::default(),
                    MetricSample {
                        name: "negative_kind".into(),
                        kind: -3,
                        ..MetricSample::default()
                    },
                ])
                .collect(),
        };
        let bytes = request.encode_to_vec();
        let views = decode_samples(&bytes).expect("decodes");
        assert_eq!(views.len(), request.samples.len());
        for (view, sample) in views.iter().zip(&request.samples) {
            assert_same(view, sample);
        }
    }

    #[test]
    fn unpacked_repeated_scalars_unknown_fields_and_merged_submessages_decode() {
        // Hand-built sample: name, an unknown varint field 99, the histogram in two parts
        // with unpacked bounds and counts, then a later name that wins.
        let mut body = Vec::new();
        let push_len = |out: &mut Vec<u8>, tag: u8, payload: &[u8]| {
            out.push(tag << 3 | LEN);
            out.push(payload.len() as u8);
            out.extend_from_slice(payload);
        };
        push_len(&mut body, 1, b"first");
        body.extend_from_slice(&[(99 << 3) as u8 | 0x80, 0x06, 0x05]); // field 99 = 5
        let mut part1 = vec![1 << 3 | FIXED64];
        part1.extend_from_slice(&0.5f64.to_le_bytes());
        part1.extend_from_slice(&[2 << 3 | VARINT, 7]);
        let mut part2 = vec![1 << 3 | FIXED64];
        part2.extend_from_slice(&2.0f64.to_le_bytes());
        part2.extend_from_slice(&[2 << 3 | VARINT, 1, 2 << 3 | VARINT, 3]);
        push_len(&mut body, 6, &part1);
        push_len(&mut body, 6, &part2);
        push_len(&mut body, 1, b"second");
        let mut request = Vec::new();
        push_len(&mut request, 1, &body);

        let views = decode_samples(&request).expect("decodes");
        assert_eq!(views[0].name, b"second");
        let histogram = views[0].histogram.as_ref().expect("histogram");
        assert_eq!(histogram.bounds.as_ref(), &[0.5, 2.0]);
        assert_eq!(histogram.counts.as_ref(), &[7, 1, 3]);
    }

    #[test]
    fn malformed_bytes_name_the_sample() {
        let good = IngestRequest {
            samples: vec![full_sample(1), full_sample(2)],
        }
        .encode_to_vec();
        let truncated = &good[..good.len() - 3];
        let err = decode_samples(truncated).expect_err("truncated");
        assert_eq!(err.field, "samples[1]");

        let mut wrong_type = Vec::new();
        let name = [1 << 3 | VARINT, 7];
        wrong_type.extend_from_slice(&[1 << 3 | LEN, name.len() as u8]);
        wrong_type.extend_from_slice(&name);
        let err = decode_samples(&wrong_type).expect_err("a varint name");
        assert_eq!(err.message, "unexpected wire type for the field");
    }
}
