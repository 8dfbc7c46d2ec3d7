// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Test ERC-20 token
/// @notice A plain ERC-20 whose transfer functions return true, with an
///         unrestricted mint. For tests only.
contract TestToken {
    /// @notice Token name.
    string public name;
    /// @notice Token symbol.
    string public symbol;
    /// @notice Number of decimals of the base unit.
    uint8 public immutable decimals;
    /// @notice Total amount minted.
    uint256 public totalSupply;
    /// @notice Balance of each holder.
    mapping(address holder => uint256) public balanceOf;
    /// @notice Amount a spender may move from an owner.
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    /// @notice Tokens moved (from address(0) when minted).
    /// @param from sender.
    /// @param to recipient.
    /// @param value amount.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice An allowance was set.
    /// @param owner owner of the tokens.
    /// @param spender spender.
    /// @param value new allowance.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Creates the token with no supply.
    /// @param name_ token name.
    /// @param symbol_ token symbol.
    /// @param decimals_ number of decimals.
    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    /// @notice Mints tokens to an address; anyone may call it.
    /// @param to recipient.
    /// @param amount amount.
    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @notice Moves tokens from the caller.
    /// @param to recipient.
    /// @param amount amount.
    /// @return always true (failures revert).
    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    /// @notice Moves tokens using an allowance.
    /// @param from owner.
    /// @param to recipient.
    /// @param amount amount.
    /// @return always true (failures revert).
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        allowance[from][msg.sender] -= amount;
        _move(from, to, amount);
        return true;
    }

    /// @notice Sets the caller's allowance for a spender.
    /// @param spender spender.
    /// @param amount new allowance.
    /// @return always true.
    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
