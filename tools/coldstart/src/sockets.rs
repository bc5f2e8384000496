//! Which connected sockets a process holds, from `/proc` (Linux only): the second check for
//! network calls during init, catching connections to endpoints the trap does not cover.

use std::collections::HashSet;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Connected TCP/UDP sockets of `pid` whose remote port is not `runtime_api_port`, as
/// `"tcp 127.0.0.1:5432"`. Listening and unconnected sockets are left out. Empty when `/proc`
/// cannot be read (the process exited, or another OS).
pub fn foreign_sockets(pid: u32, runtime_api_port: u16) -> Vec<String> {
    let inodes = socket_inodes(pid);
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    for protocol in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/{protocol}")) else {
            continue;
        };
        for entry in parse_table(&table) {
            if inodes.contains(&entry.inode) && entry.remote_port != 0 {
                if entry.remote_port == runtime_api_port && entry.remote_is_loopback {
                    continue;
                }
                found.push(format!(
                    "{} {}:{}",
                    protocol.trim_end_matches('6'),
                    entry.remote_ip,
                    entry.remote_port
                ));
            }
        }
    }
    found.sort();
    found
}

fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    remote_ip: String,
    remote_port: u16,
    remote_is_loopback: bool,
    inode: u64,
}

/// Rows of `/proc/net/{tcp,tcp6,udp,udp6}`; malformed rows are skipped.
fn parse_table(table: &str) -> Vec<Entry> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (ip, port) = fields.get(2)?.split_once(':')?;
            let inode = fields.get(9)?.parse().ok()?;
            let remote_port = u16::from_str_radix(port, 16).ok()?;
            let (remote_ip, remote_is_loopback) = decode_ip(ip)?;
            Some(Entry {
                remote_ip,
                remote_port,
                remote_is_loopback,
                inode,
            })
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host byte order (little-endian here).
fn decode_ip(hex: &str) -> Option<(String, bool)> {
    let words: Option<Vec<[u8; 4]>> = (0..hex.len() / 8)
        .map(|i| {
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()
                .map(u32::to_le_bytes)
        })
        .collect();
    let bytes: Vec<u8> = words?.concat();
    match bytes.len() {
        4 => {
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            Some((ip.to_string(), ip.is_loopback()))
        }
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            let ip = Ipv6Addr::from(octets);
            let loopback =
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
            Some((ip.to_string(), loopback))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_proc_net_rows() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:A1B2 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0\n";
        let rows = parse_table(table);
        assert_eq!(
            rows,
            vec![
                Entry {
                    remote_ip: "127.0.0.1".into(),
                    remote_port: 5432,
                    remote_is_loopback: true,
                    inode: 4242
                },
                Entry {
                    remote_ip: "0.0.0.0".into(),
                    remote_port: 0,
                    remote_is_loopback: false,
                    inode: 17
                },
            ]
        );
    }

    #[test]
    fn decodes_ipv6_and_mapped_addresses() {
        assert_eq!(
            decode_ip("00000000000000000000000001000000"),
            Some(("::1".to_owned(), true))
        );
        assert_eq!(
            decode_ip("0000000000000000FFFF00000100007F"),
            Some(("::ffff:127.0.0.1".to_owned(), true))
        );
        assert_eq!(decode_ip("zz"), None);
    }
}
