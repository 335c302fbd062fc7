//! The webhook the load and store benchmarks send: a WooCommerce
//! `order.updated` with twelve line items, about 1.8 KB of JSON.

pub fn order_json() -> String {
    let mut items = String::new();
    for i in 0..12 {
        items.push_str(&format!(
            r#"{{"id":{i},"name":"Premium Quality T-Shirt size {i}","product_id":{},"quantity":{},"subtotal":"19.99","total":"19.99","sku":"TS-{i:04}"}},"#,
            1000 + i,
            i % 3 + 1
        ));
    }
    items.pop();
    format!(
        r#"{{"id":73412,"status":"processing","currency":"EUR","total":"239.88","customer_id":42,"billing":{{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com","city":"London"}},"line_items":[{items}]}}"#
    )
}
