//! P-521 ECDHE (`secp521r1`) as a rustls key-exchange group, on the RustCrypto `p521` crate:
//! rustls' ring provider has X25519, P-256 and P-384 but not P-521, which Go (and so the
//! toolkit) offers for `curve_preferences: [CurveP521]`. The peer's share must be an
//! uncompressed SEC1 point on the curve (RFC 8446 4.2.8.2); the shared secret is its x
//! coordinate, 66 bytes, as TLS uses it.

use p521::ecdh::EphemeralSecret;
use p521::elliptic_curve::sec1::ToSec1Point;
use p521::elliptic_curve::Generate;
use p521::PublicKey;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};

/// The group, for a provider's `kx_groups`.
pub static SECP521R1: &dyn SupportedKxGroup = &Secp521r1;

/// An uncompressed point: the 0x04 tag, then x and y of 66 bytes each.
const POINT_LEN: usize = 1 + 2 * 66;

#[derive(Debug)]
struct Secp521r1;

impl SupportedKxGroup for Secp521r1 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = EphemeralSecret::try_generate_from_rng(&mut getrandom::SysRng)
            .map_err(|_| Error::FailedToGetRandomBytes)?;
        let pub_key = secret.public_key().to_sec1_point(false).as_bytes().to_vec();
        Ok(Box::new(Exchange { secret, pub_key }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

/// One side of a key exchange: the ephemeral secret (zeroed on drop) and its public share.
struct Exchange {
    secret: EphemeralSecret,
    pub_key: Vec<u8>,
}

impl ActiveKeyExchange for Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let peer = peer_key(peer_pub_key)?;
        let shared = self.secret.diffie_hellman(&peer);
        Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

/// The peer's share, refused unless an uncompressed point on the curve (which the identity,
/// encoded as one zero byte, is not).
fn peer_key(bytes: &[u8]) -> Result<PublicKey, Error> {
    if bytes.len() != POINT_LEN || bytes[0] != 0x04 {
        return Err(PeerMisbehaved::InvalidKeyShare.into());
    }
    PublicKey::from_sec1_bytes(bytes).map_err(|_| PeerMisbehaved::InvalidKeyShare.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(result: Result<SharedSecret, Error>) -> bool {
        matches!(
            result,
            Err(Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare))
        )
    }

    #[test]
    fn both_sides_agree_on_a_66_byte_secret() {
        let (a, b) = (SECP521R1.start().unwrap(), SECP521R1.start().unwrap());
        assert_eq!(a.group(), NamedGroup::secp521r1);
        assert_eq!((a.pub_key().len(), a.pub_key()[0]), (POINT_LEN, 0x04));
        assert_ne!(a.pub_key(), b.pub_key());
        let (a_pub, b_pub) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        let ab = a.complete(&b_pub).unwrap();
        let ba = b.complete(&a_pub).unwrap();
        assert_eq!(ab.secret_bytes().len(), 66);
        assert_eq!(ab.secret_bytes(), ba.secret_bytes());
    }

    #[test]
    fn malformed_off_curve_or_identity_shares_are_refused() {
        let good = SECP521R1.start().unwrap().pub_key().to_vec();
        let mut compressed = vec![0x02 | (good[POINT_LEN - 1] & 1)];
        compressed.extend_from_slice(&good[1..67]);
        let mut off_curve = good.clone();
        off_curve[POINT_LEN - 1] ^= 1;
        let mut zeros = vec![0u8; POINT_LEN];
        zeros[0] = 0x04;
        let mut tagless = good.clone();
        tagless[0] = 0x05;
        let shares: [&[u8]; 8] = [
            &[],
            &[0x00],
            &good[..POINT_LEN - 1],
            &[good.as_slice(), &[0]].concat(),
            &compressed,
            &off_curve,
            &zeros,
            &tagless,
        ];
        for share in shares {
            let exchange = SECP521R1.start().unwrap();
            assert!(invalid(exchange.complete(share)), "{share:02x?}");
        }
        // x beyond the field (all ones) is not a coordinate.
        let mut too_big = vec![0xff; POINT_LEN];
        too_big[0] = 0x04;
        assert!(invalid(SECP521R1.start().unwrap().complete(&too_big)));
    }
}
