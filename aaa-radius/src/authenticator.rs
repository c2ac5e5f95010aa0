//! `RadiusAuthenticator`: the `Authenticator` of aaa over RADIUS (PAP).

use aaa_core::{Authenticator, Credentials, Decision, Identity, Mechanism, RejectReason};
use async_trait::async_trait;
use radius::core::{rfc2865, rfc5607};

use crate::{Client, Code, PrivilegeMapping, RadiusConfig, RadiusError, Reply, Request};

/// Authenticates logins against the configured RADIUS servers, with PAP.
///
/// Each login sends one Access-Request with, in this order: Message-Authenticator (always,
/// first), User-Name, User-Password (hidden), the NAS-Identifier and/or NAS-IP-Address
/// (NAS-IPv6-Address) of the configuration, Service-Type = Login-User (1: a login to the
/// device's management interface), and Calling-Station-Id = the login's source address as
/// text (`192.0.2.1`, `2001:db8::1`).
///
/// The answer, through [`Client::send`] (servers in order, failover only on silence):
///
/// | reply | decision |
/// |---|---|
/// | Access-Accept | `Accept`, read/write or read-only by the [`PrivilegeMapping`] (read-only when in doubt) |
/// | Access-Reject | `Reject(ServerReject)`: final, no other server is asked |
/// | Access-Challenge | `Reject(Unsupported)`: challenges are not supported |
/// | no valid reply from any server | `Unavailable(`[`RadiusError::NoServerAnswered`]`)`: the method list moves on (e.g. to local accounts) |
///
/// The identity's username is the username sent. It never panics, whatever the network
/// brings, and never logs a password or a secret.
#[derive(Debug, Clone)]
pub struct RadiusAuthenticator {
    client: Client,
    privilege: PrivilegeMapping,
}

impl RadiusAuthenticator {
    /// Validates `config` and opens the client's sockets. Must be called inside a tokio
    /// runtime ([`RadiusError::NoRuntime`] otherwise).
    pub fn new(config: RadiusConfig) -> Result<Self, RadiusError> {
        let client = Client::new(&config)?;
        Ok(Self {
            client,
            privilege: config.privilege,
        })
    }

    /// The transport, e.g. for [`Client::stats`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The Access-Request for a login (see the type's documentation for its attributes).
    pub fn access_request(&self, credentials: &Credentials<'_>) -> Result<Request, RadiusError> {
        let mut request = Request::access_request();
        request
            .add(rfc2865::USER_NAME_TYPE, credentials.username())?
            .user_password(credentials.password().as_bytes())?
            .add_all(self.client.nas_attributes())?
            .add(
                rfc2865::SERVICE_TYPE_TYPE,
                rfc2865::SERVICE_TYPE_LOGIN_USER.to_be_bytes(),
            )?
            .add(
                rfc2865::CALLING_STATION_ID_TYPE,
                credentials.src_addr().to_string(),
            )?;
        Ok(request)
    }

    fn decide(&self, credentials: &Credentials<'_>, reply: &Reply) -> Decision {
        match reply.code() {
            Code::AccessAccept => {
                let read_write = self.privilege.read_write(reply);
                tracing::debug!(target: "aaa::radius", user = credentials.username(), read_write, "RADIUS Access-Accept");
                Decision::Accept(Identity::new(credentials.username(), read_write))
            }
            Code::AccessReject => {
                tracing::debug!(target: "aaa::radius", user = credentials.username(), "RADIUS Access-Reject");
                Decision::Reject(RejectReason::ServerReject)
            }
            other => {
                tracing::info!(target: "aaa::radius", user = credentials.username(), code = %other, "RADIUS answer not supported: rejected");
                Decision::Reject(RejectReason::Unsupported)
            }
        }
    }
}

#[async_trait]
impl Authenticator for RadiusAuthenticator {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Radius
    }

    async fn authenticate(&self, credentials: &Credentials<'_>) -> Decision {
        let request = match self.access_request(credentials) {
            Ok(request) => request,
            Err(e) => return Decision::Unavailable(Box::new(e)),
        };
        match self.client.send(&request).await {
            Ok(reply) => self.decide(credentials, &reply),
            Err(e) => Decision::Unavailable(Box::new(e)),
        }
    }
}

impl PrivilegeMapping {
    /// Whether `reply` (an Access-Accept) grants read/write access under this mapping. Anything
    /// missing, malformed, repeated or different gives `false` (read-only).
    pub fn read_write(&self, reply: &Reply) -> bool {
        match self {
            Self::ServiceType => matches!(
                rfc2865::lookup_all_service_type(reply.decoded()).as_deref(),
                Ok([rfc2865::SERVICE_TYPE_ADMINISTRATIVE_USER])
            ),
            Self::ManagementPrivilegeLevel { min } => matches!(
                rfc5607::lookup_all_management_privilege_level(reply.decoded()).as_deref(),
                Ok([level]) if level >= min
            ),
            Self::VendorAttribute {
                vendor_id,
                vendor_type,
                value,
            } => match vendor_values(reply, *vendor_id, *vendor_type) {
                Some(values) => values.len() == 1 && values.first() == Some(&value.as_slice()),
                None => false,
            },
        }
    }
}

/// The values of every sub-attribute `vendor_type` of vendor `vendor_id` in the reply's
/// Vendor-Specific attributes (RFC 2865 §5.26 format); `None` if one of that vendor's
/// Vendor-Specific attributes is malformed.
fn vendor_values(reply: &Reply, vendor_id: u32, vendor_type: u8) -> Option<Vec<&[u8]>> {
    let mut found = Vec::new();
    for vsa in reply.attribute_values(rfc2865::VENDOR_SPECIFIC_TYPE) {
        let (Some(id), Some(mut rest)) = (vsa.get(..4), vsa.get(4..)) else {
            continue;
        };
        if id != vendor_id.to_be_bytes() {
            continue;
        }
        while !rest.is_empty() {
            let (Some(&t), Some(&len)) = (rest.first(), rest.get(1)) else {
                return None;
            };
            let len = usize::from(len);
            if len < 2 {
                return None;
            }
            let (Some(value), Some(next)) = (rest.get(2..len), rest.get(len..)) else {
                return None;
            };
            if t == vendor_type {
                found.push(value);
            }
            rest = next;
        }
    }
    Some(found)
}
