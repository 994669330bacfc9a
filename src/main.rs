fn main() {
    println!("vx86");
}
