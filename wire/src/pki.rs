//! Certificates for a cluster's private CA. `quorate certs` uses this to make a development CA
//! and every certificate at once; in production an operator makes the key and a CSR on the
//! signer host (`quorate-signer init`) and the CA signs only the CSR's public key, with the role
//! decided by the CA, never by the requester.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use crate::tls::{Role, ROLE_URI_PREFIX};

/// Errors creating or signing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused the request.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A name is not usable in a certificate.
    #[error("invalid name `{0}`: use 1..=64 chars of [a-z0-9.-]")]
    Name(String),
    /// The certificate asked for would be valid after its CA has expired.
    #[error("the CA expires {ca_not_after} UTC: a certificate for {days} days would outlive it (at most {max_days} days; or renew the CA first)")]
    OutlivesCa {
        /// When the CA expires.
        ca_not_after: String,
        /// Days asked for.
        days: u32,
        /// The most it can be.
        max_days: i64,
    },
}

/// A certificate and its private key, PEM-encoded. The key is secret: it has no `Debug`.
pub struct Issued {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
}

/// A certificate authority able to issue certificates.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn valid_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PkiError::Name(name.to_string()))
    }
}

fn leaf_params(role: Role, name: &str, hosts: &[String]) -> Result<CertificateParams, PkiError> {
    valid_name(name)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    // A random serial (positive, minimal): rcgen would derive it from the key, so a renewal
    // for the same key would repeat it.
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "Quorate");
    params.distinguished_name = dn;
    params.subject_alt_names.push(SanType::URI(
        format!("{ROLE_URI_PREFIX}{}", role.as_str()).try_into()?,
    ));
    for h in hosts {
        match h.parse::<IpAddr>() {
            Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => params
                .subject_alt_names
                .push(SanType::DnsName(h.as_str().try_into()?)),
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        Role::Coordinator => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// How long a node's certificate is valid by default (renew it for the same key before then:
/// deploy/README.md, "Certificates").
pub const LEAF_DAYS: u32 = 365;
/// How long the cluster CA is valid.
pub const CA_DAYS: u32 = 3650;
/// The longest a node's certificate may be made valid for.
pub const MAX_LEAF_DAYS: u32 = 825;

/// Sets a certificate's validity: from an hour ago (clocks differ) for `days` days.
fn valid_for(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// Hosts a development coordinator certificate is valid for.
pub fn loopback_hosts() -> Vec<String> {
    vec![
        "localhost".to_string(),
        IpAddr::V4(Ipv4Addr::LOCALHOST).to_string(),
        IpAddr::V6(Ipv6Addr::LOCALHOST).to_string(),
    ]
}

impl Authority {
    /// Creates a new self-signed CA.
    pub fn generate(name: &str) -> Result<Self, PkiError> {
        Self::generate_for(name, CA_DAYS)
    }

    fn generate_for(name: &str, days: u32) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Quorate");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        valid_for(&mut params, days);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        // Re-signing the same parameters with the same key gives an equivalent issuer.
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// The CA certificate PEM (what every node trusts).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA private key PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate and a fresh key for `role`/`name`.
    pub fn issue(&self, role: Role, name: &str, hosts: &[String]) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = leaf_params(role, name, hosts)?;
        valid_for(&mut params, LEAF_DAYS);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Like [`Authority::issue`], valid only between two dates (year, month, day; UTC
    /// midnight): for short-lived certificates, and for testing that an expired one is refused.
    pub fn issue_between(
        &self,
        role: Role,
        name: &str,
        hosts: &[String],
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = leaf_params(role, name, hosts)?;
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs the public key of a CSR as `role`/`name`, valid for `days` days and for `hosts`
    /// (DNS names or IP addresses, for a coordinator); everything else in the CSR is ignored.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        role: Role,
        name: &str,
        hosts: &[String],
        days: u32,
    ) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let mut params = leaf_params(role, name, hosts)?;
        valid_for(&mut params, days);
        let ca_not_after = self.cert.params().not_after;
        if params.not_after > ca_not_after {
            return Err(PkiError::OutlivesCa {
                ca_not_after: crate::tls::not_after_text(ca_not_after.unix_timestamp()),
                days,
                max_days: (ca_not_after - time::OffsetDateTime::now_utc()).whole_days(),
            });
        }
        let cert = params.signed_by(&csr.public_key, &self.cert, &self.key)?;
        Ok(cert.pem())
    }
}

/// A certificate signing request for `name` over an existing TLS key (PEM): for renewal.
pub fn csr_for_key(name: &str, key_pem: &str) -> Result<String, PkiError> {
    valid_name(name)?;
    let key = KeyPair::from_pem(key_pem)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    Ok(params.serialize_request(&key)?.pem()?)
}

/// Makes a TLS key and a certificate signing request for `name`; returns (key PEM, CSR PEM).
pub fn key_and_csr(name: &str) -> Result<(String, String), PkiError> {
    valid_name(name)?;
    let key = KeyPair::generate()?;
    // The request names the node only; the CA decides role and usages when it signs.
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certificate_outlives_its_ca_even_after_the_ca_is_reloaded() {
        let short = Authority::generate_for("short-ca", 10).unwrap();
        // As `quorate sign-csr` uses it: loaded from its files.
        let ca = Authority::load(&short.cert_pem(), &short.key_pem()).unwrap();
        let (_, csr) = key_and_csr("signer-1").unwrap();
        match ca.sign_csr(&csr, Role::Signer, "signer-1", &[], 365) {
            Err(PkiError::OutlivesCa { days, max_days, .. }) => {
                assert_eq!(days, 365);
                assert!((8..=10).contains(&max_days), "{max_days}");
            }
            other => panic!("{:?}", other.map(|_| "a certificate")),
        }
        assert!(ca.sign_csr(&csr, Role::Signer, "signer-1", &[], 5).is_ok());
        let long = Authority::generate("ca").unwrap();
        let long = Authority::load(&long.cert_pem(), &long.key_pem()).unwrap();
        assert!(long
            .sign_csr(&csr, Role::Signer, "signer-1", &[], MAX_LEAF_DAYS)
            .is_ok());
    }
}
