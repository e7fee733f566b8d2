//! A simulated network between a device and its chunk server: chunks are served in random
//! order, and some are lost in transit or arrive corrupted.

use ota_core::download::ChunkRequest;

use crate::Rng;

/// What happened to one chunk request in transit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transit {
    /// The chunk arrived: its offset and bytes (altered when `corrupted`).
    Arrived {
        /// The chunk's offset in the artifact.
        offset: u64,
        /// The bytes that arrived.
        data: Vec<u8>,
        /// Whether one byte was flipped on the way.
        corrupted: bool,
    },
    /// The response was lost; the request went back to the wanted list, as a transport that
    /// retries would put it.
    Lost,
}

/// How many chunks a [`Network`] delivered, corrupted and lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Chunks delivered, corrupted or not (a chunk fetched again counts again).
    pub delivered: usize,
    /// Chunks delivered with a flipped byte.
    pub corrupted: usize,
    /// Responses lost in transit.
    pub lost: usize,
}

/// A lossy, reordering network, deterministic from its generator.
#[derive(Debug, Clone)]
pub struct Network {
    rng: Rng,
    /// The chance a response is lost.
    pub loss: f64,
    /// The chance a delivered chunk has one byte flipped.
    pub corruption: f64,
    /// What it has carried since [`Network::take_traffic`] was last called.
    pub traffic: Traffic,
}

impl Network {
    /// A network drawing from `rng`, losing a response with probability `loss` and
    /// corrupting a chunk with probability `corruption`.
    pub fn new(rng: Rng, loss: f64, corruption: f64) -> Self {
        Network {
            rng,
            loss,
            corruption,
            traffic: Traffic::default(),
        }
    }

    /// A network that loses and corrupts nothing, but still serves in random order.
    pub fn reliable(rng: Rng) -> Self {
        Network::new(rng, 0.0, 0.0)
    }

    /// Serves one of the `wanted` requests, chosen at random, from `artifact`: `None` when
    /// nothing is wanted. A served request leaves `wanted`; a lost one is put back at its end.
    pub fn serve(&mut self, wanted: &mut Vec<ChunkRequest>, artifact: &[u8]) -> Option<Transit> {
        if wanted.is_empty() {
            return None;
        }
        let r = wanted.swap_remove(self.rng.index(wanted.len()));
        if self.rng.chance(self.loss) {
            self.traffic.lost += 1;
            wanted.push(r);
            return Some(Transit::Lost);
        }
        let mut data = chunk(artifact, &r).to_vec();
        let corrupted = self.rng.chance(self.corruption) && !data.is_empty();
        if corrupted {
            let i = self.rng.index(data.len());
            data[i] ^= 0x5a;
            self.traffic.corrupted += 1;
        }
        self.traffic.delivered += 1;
        Some(Transit::Arrived {
            offset: r.offset,
            data,
            corrupted,
        })
    }

    /// What was carried since the last call, and starts counting again.
    pub fn take_traffic(&mut self) -> Traffic {
        std::mem::take(&mut self.traffic)
    }
}

/// Serves the first of the `wanted` requests, faithfully: `(offset, bytes)`, or `None` when
/// nothing is wanted.
pub fn in_order(
    wanted: &mut std::collections::VecDeque<ChunkRequest>,
    artifact: &[u8],
) -> Option<(u64, Vec<u8>)> {
    let r = wanted.pop_front()?;
    Some((r.offset, chunk(artifact, &r).to_vec()))
}

/// The bytes of `artifact` that `request` asks for, cut short where the artifact ends.
pub fn chunk<'a>(artifact: &'a [u8], request: &ChunkRequest) -> &'a [u8] {
    let start = usize::try_from(request.offset)
        .unwrap_or(usize::MAX)
        .min(artifact.len());
    let end = start
        .saturating_add(request.length as usize)
        .min(artifact.len());
    &artifact[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(n: usize) -> Vec<ChunkRequest> {
        (0..n)
            .map(|index| ChunkRequest {
                index,
                offset: index as u64 * 4,
                length: 4,
            })
            .collect()
    }

    #[test]
    fn a_reliable_network_serves_every_chunk_once_in_some_order() {
        let artifact: Vec<u8> = (0..40).collect();
        let mut wanted = requests(10);
        let mut net = Network::reliable(Rng::new(5));
        let mut got = Vec::new();
        while let Some(t) = net.serve(&mut wanted, &artifact) {
            let Transit::Arrived {
                offset,
                data,
                corrupted: false,
            } = t
            else {
                panic!("{t:?}");
            };
            assert_eq!(data, artifact[offset as usize..offset as usize + 4]);
            got.push(offset);
        }
        assert_ne!(
            got,
            (0..10).map(|i| i * 4).collect::<Vec<u64>>(),
            "not shuffled"
        );
        got.sort();
        assert_eq!(got, (0..10).map(|i| i * 4).collect::<Vec<u64>>());
        assert_eq!(net.take_traffic().delivered, 10);
        assert_eq!(net.traffic, Traffic::default());
    }

    #[test]
    fn a_chunk_past_the_end_is_cut_short() {
        let artifact: Vec<u8> = (0..10).collect();
        let at = |offset, length| ChunkRequest {
            index: 0,
            offset,
            length,
        };
        assert_eq!(chunk(&artifact, &at(4, 4)), [4, 5, 6, 7]);
        assert_eq!(chunk(&artifact, &at(8, 4)), [8, 9]);
        assert!(chunk(&artifact, &at(u64::MAX, 4)).is_empty());
    }

    #[test]
    fn a_lost_response_is_wanted_again_and_a_corrupt_one_differs() {
        let artifact = vec![0u8; 40];
        let mut lossy = Network::new(Rng::new(1), 1.0, 0.0);
        let mut wanted = requests(1);
        assert_eq!(lossy.serve(&mut wanted, &artifact), Some(Transit::Lost));
        assert_eq!(wanted.len(), 1);
        let mut noisy = Network::new(Rng::new(1), 0.0, 1.0);
        let Some(Transit::Arrived {
            data, corrupted, ..
        }) = noisy.serve(&mut wanted, &artifact)
        else {
            panic!("nothing arrived");
        };
        assert!(corrupted && data != [0u8; 4]);
        assert!(wanted.is_empty());
        assert_eq!(
            noisy.traffic,
            Traffic {
                delivered: 1,
                corrupted: 1,
                lost: 0
            }
        );
    }
}
