//! Message attributes on the command line: `NAME=VALUE` for a `String`, `NAME:TYPE=VALUE` for
//! the other types (`Number`, `String.Array`, `Binary` given in base64), and how they print.

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use base64::Engine;

use shardlog::proto::v1::AttributeValue;

/// One `--attribute` argument, parsed: its name and value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttributeArg {
    pub(crate) name: String,
    pub(crate) value: AttributeValue,
}

impl std::str::FromStr for AttributeArg {
    type Err = anyhow::Error;

    fn from_str(arg: &str) -> anyhow::Result<Self> {
        let (head, value) = arg
            .split_once('=')
            .ok_or_else(|| anyhow!("{arg:?} is not NAME=VALUE or NAME:TYPE=VALUE"))?;
        let (name, data_type) = head.split_once(':').unwrap_or((head, "String"));
        let value = match data_type {
            "Binary" => AttributeValue {
                data_type: data_type.to_owned(),
                binary_value: base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .with_context(|| format!("the Binary value of {name} is not base64"))?
                    .into(),
                ..AttributeValue::default()
            },
            "String" | "Number" | "String.Array" => AttributeValue {
                data_type: data_type.to_owned(),
                string_value: value.to_owned(),
                ..AttributeValue::default()
            },
            other => {
                return Err(anyhow!(
                    "type {other:?} of {name} is not String, Number, String.Array or Binary"
                ))
            }
        };
        Ok(AttributeArg {
            name: name.to_owned(),
            value,
        })
    }
}

/// The arguments as the map a put request carries.
pub(crate) fn to_map(args: &[AttributeArg]) -> HashMap<String, AttributeValue> {
    args.iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect()
}

/// Attributes as one word each, in name order: `name=value`, `name:Number=3`, binary in base64.
pub(crate) fn format(attributes: &HashMap<String, AttributeValue>) -> Vec<String> {
    let mut names: Vec<_> = attributes.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let v = &attributes[name];
            match v.data_type.as_str() {
                "String" => format!("{name}={}", v.string_value),
                "Binary" => format!(
                    "{name}:Binary={}",
                    base64::engine::general_purpose::STANDARD.encode(&v.binary_value)
                ),
                other => format!("{name}:{other}={}", v.string_value),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_with_and_without_a_type_and_print_back() {
        let args: Vec<AttributeArg> = [
            "color=red",
            "price:Number=2.5",
            "blob:Binary=AP8=",
            "tags:String.Array=[\"a\"]",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(args[0].value.data_type, "String");
        assert_eq!(args[1].value.string_value, "2.5");
        assert_eq!(&args[2].value.binary_value[..], &[0, 255]);
        assert_eq!(
            format(&to_map(&args)),
            [
                "blob:Binary=AP8=",
                "color=red",
                "price:Number=2.5",
                "tags:String.Array=[\"a\"]"
            ]
        );
        assert!("novalue".parse::<AttributeArg>().is_err());
        assert!("x:Float=1".parse::<AttributeArg>().is_err());
        assert!("x:Binary=!!".parse::<AttributeArg>().is_err());
    }
}
